//! Where each file was read up to, kept across restarts in a small JSON
//! file in the data directory. Written after the pipeline acknowledged
//! what was read (so a crash repeats at most the last batch, never skips
//! one), atomically: temp file, fsync, rename, fsync the folder.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file's format version.
const VERSION: u32 = 1;

/// One file's read position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The path it was read under.
    pub(crate) path: PathBuf,
    /// Device and inode: the file's identity across renames.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Bytes consumed (always at a line end).
    pub(crate) offset: u64,
    /// Hex of the file's first bytes (up to [`super::FINGERPRINT`]): tells a
    /// reused inode from the file that was read.
    pub(crate) fingerprint: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    files: Vec<Position>,
}

/// Reads the positions; a missing file is an empty state. A corrupt one
/// is an error naming it (the receiver then starts over, as configured).
pub(crate) fn load(path: &Path) -> Result<Vec<Position>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: File = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.version != VERSION {
        return Err(format!("{}: unknown version {}", path.display(), file.version));
    }
    Ok(file.files)
}

/// Replaces the state file with `positions`.
pub(crate) fn save(path: &Path, positions: &[Position]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let body = serde_json::to_vec(&File { version: VERSION, files: positions.to_vec() })
        .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        // IMPORTANT: the data is on disk before the rename makes it current.
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // IMPORTANT: fsync the folder so the rename itself survives a crash.
    std::fs::File::open(dir)?.sync_all()
}
