//! Embeds every file under `web/` into the crate: writes `assets.rs` into
//! `OUT_DIR` with one `include_bytes!` per file, its content type and ETag,
//! plus `index.html` with `{{modulepreload}}` replaced by a preload link per
//! module and `{{static}}` by the versioned asset
//! prefix `/static/<hash>`, where `<hash>` covers every file.
//!
//! There is no front-end build: the files are served as written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let web = manifest.join("web");
    // Cargo rescans a directory given here for any change below it.
    println!("cargo:rerun-if-changed=web");

    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();

    // FNV-1a over every path and body: a change anywhere gives new URLs, so
    // assets can be cached forever.
    let mut all = Fnv::new();
    let mut table = String::new();
    let mut index = None;
    for rel in &files {
        let path = web.join(rel);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        all.write(rel.as_bytes());
        all.write(&(body.len() as u64).to_le_bytes());
        all.write(&body);
        if rel == "index.html" {
            index = Some(String::from_utf8(body).expect("web/index.html is UTF-8"));
            continue;
        }
        let mut one = Fnv::new();
        one.write(&body);
        let content_type = content_type(rel)
            .unwrap_or_else(|| panic!("web/{rel}: unknown file type; add its extension to build.rs"));
        writeln!(
            table,
            "    Asset {{ path: {rel:?}, body: include_bytes!({:?}), content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\" }},",
            path.display().to_string(),
            one.finish()
        )
        .expect("writing to a String");
    }
    let hash = format!("{:016x}", all.finish());
    // Every module is preloaded, so the browser fetches them in parallel
    // instead of discovering the import graph one level at a time.
    let preload: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("js/") && f.ends_with(".js") && f.as_str() != "js/theme-init.js")
        .map(|f| format!("<link rel=\"modulepreload\" href=\"{{{{static}}}}/{f}\">"))
        .collect();
    let index = index
        .expect("web/index.html exists")
        .replace("{{modulepreload}}", &preload.join("\n    "))
        .replace("{{static}}", &format!("/static/{}", &hash[..12]));
    std::fs::write(out.join("index.html"), index).expect("write OUT_DIR/index.html");

    let code = format!(
        "/// Hash of every embedded file: the `<hash>` in `/static/<hash>/…`.\n\
         pub(crate) const BUILD_HASH: &str = {:?};\n\
         /// `web/index.html` with its `{{{{static}}}}` placeholders filled in.\n\
         pub(crate) const INDEX_HTML: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/index.html\"));\n\
         /// ETag of [`INDEX_HTML`].\n\
         pub(crate) const INDEX_ETAG: &str = \"\\\"{}\\\"\";\n\
         /// Every other file under `web/`, sorted by path.\n\
         pub(crate) static ASSETS: &[Asset] = &[\n{table}];\n",
        &hash[..12],
        hash,
    );
    std::fs::write(out.join("assets.rs"), code).expect("write OUT_DIR/assets.rs");
}

/// Paths of every regular file under `dir`, relative to `root`, with `/`
/// separators; dot files are skipped.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let parts: Vec<String> =
                rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
        }
    }
}

fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// 64-bit FNV-1a: enough to tell versions apart, with no dependency.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
