use super::*;
use sightline_pipeline::config::parse_size;

#[test]
fn sizes_and_durations_parse() {
    assert_eq!(parse_size("10GiB"), Some(10 << 30));
    assert_eq!(parse_size("500MB"), Some(500_000_000));
    assert_eq!(parse_size("64k"), Some(65_536));
    assert_eq!(parse_size("1.5MiB"), Some(1_572_864));
    assert_eq!(parse_size("12"), Some(12));
    assert_eq!(parse_size("ten"), None);
    assert_eq!(parse_size("5 parsecs"), None);
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("soon"), None);
}

#[test]
fn defaults_are_loopback_and_safe() {
    let s = Settings::resolve(ServeArgs::default()).unwrap();
    assert_eq!(s.otlp_grpc_addr.to_string(), "127.0.0.1:4317");
    assert_eq!(s.otlp_http_addr.to_string(), "127.0.0.1:4318");
    assert_eq!(s.http_addr.to_string(), "127.0.0.1:16686");
    assert_eq!(s.data_dir, PathBuf::from("./sightline-data"));
    assert_eq!(s.retention, Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(s.max_disk, None);
    assert_eq!(s.wal_fsync, FsyncPolicy::Always);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.memory_limit, 256 << 20);
    assert_eq!(s.head_max_size(), 16 << 20);
    assert_eq!(s.header_timeout, Duration::from_secs(10));
    assert_eq!(s.body_timeout, Duration::from_secs(30));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
}

#[test]
fn errors_name_the_setting_and_the_fix() {
    let bad = |name: &'static str, value: &str| {
        Settings::resolve(ServeArgs::default().with(name, value)).unwrap_err().to_string()
    };
    assert_eq!(
        bad("retention", "forever"),
        "invalid value \"forever\" for --retention (env SIGHTLINE_RETENTION, config key retention): \
         expected a duration like 7d, 12h, 30m, or off"
    );
    assert!(bad("http-addr", "localhost").contains("--http-addr"));
    assert!(bad("log-format", "xml").contains("text or json"));
    assert!(bad("wal-fsync", "sometimes").contains("--wal-fsync"));
    assert!(bad("idle-timeout", "forever").contains("SIGHTLINE_IDLE_TIMEOUT"));
    assert!(bad("otlp-http-addr", "127.0.0.1:4317").contains("both 127.0.0.1:4317"), "port clash");
    assert!(bad("tls-cert", "cert.pem").contains("--tls-cert and --tls-key go together"));
    assert!(bad("tls-client-ca", "ca.pem").contains("mutual TLS is TLS first"));
    assert!(bad("peer-ca", "ca.pem").contains("--peer-ca needs --tls-cert"));
    assert!(bad("metrics-auth", "maybe").contains("open or token"));
}

#[test]
fn config_file_fills_gaps_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sightline.toml");
    std::fs::write(
        &path,
        "data_dir = \"/tmp/x\"\nretention = \"2d\"\nhttp_addr = \"127.0.0.1:9999\"\nidle_timeout = \"5s\"\n",
    )
    .unwrap();
    let args = ServeArgs::config_file(path.clone()).with("http-addr", "127.0.0.1:8888");
    let s = Settings::resolve(args).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(s.retention, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(s.http_addr.to_string(), "127.0.0.1:8888");
    assert_eq!(s.idle_timeout, Duration::from_secs(5));

    std::fs::write(&path, "data-dir = \"/tmp/x\"\nconfig = \"other.toml\"\n").unwrap();
    let e = Settings::resolve(ServeArgs::config_file(path)).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e:?}");
    assert!(e.0[0].contains("unknown field `config`"), "--config is not a file key: {e:?}");
    assert!(
        e.0[1].contains("unknown field `data-dir`") && e.0[1].contains("valid keys are data_dir,"),
        "{e:?}"
    );
    assert!(!e.to_string().contains('\n'));
}

/// One definition per setting: names are unique, flags, variables and keys
/// derive from them, and `serve --help` lists every one.
#[test]
fn every_setting_is_defined_once_and_reaches_clap() {
    let mut names: Vec<&str> = defs::SETTINGS.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), defs::SETTINGS.len(), "duplicate setting names");
    let cmd = ServeArgs::augment_args(Command::new("serve"));
    for s in defs::SETTINGS {
        let arg = cmd.get_arguments().find(|a| a.get_id() == s.name).unwrap();
        assert_eq!(arg.get_long(), Some(s.name));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(s.env().as_str()));
        assert_eq!(s.key(), s.name.replace('-', "_"));
        // Every default parses.
        if let Default::Value(v) = s.default {
            (s.apply)(&mut Settings::blank(), v).unwrap_or_else(|e| panic!("{}: default {v:?}: {e}", s.name));
        }
    }
}

/// The README's settings table is generated from the definitions; when
/// they disagree this fails with the table to paste (or rewrites the README
/// with `UPDATE_README=1`).
#[test]
fn readme_settings_table_matches_the_definitions() {
    const BEGIN: &str = "<!-- settings: generated from crates/sightline/src/config/defs.rs -->\n";
    const END: &str = "<!-- end of settings -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(BEGIN).expect("README marks the settings table") + BEGIN.len();
    let end = start + readme[start..].find(END).expect("README ends the settings table");
    let want = defs::readme_table();
    if readme[start..end] != want {
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &readme[..start], &readme[end..])).unwrap();
        } else {
            panic!("README.md's settings table is stale; run with UPDATE_README=1 or paste:\n{want}");
        }
    }
}

#[test]
fn storage_is_the_data_dir_a_folder_or_an_object_store() {
    let s = Settings::resolve(ServeArgs::default()).unwrap();
    assert_eq!(s.storage, Storage::Local(PathBuf::from("./sightline-data")));
    assert_eq!(s.max_block_age(), Duration::from_secs(120));
    let args = |storage: &str| ServeArgs::default().with("storage", storage);
    let s = Settings::resolve(args("/mnt/blocks")).unwrap();
    assert_eq!(s.storage, Storage::Local(PathBuf::from("/mnt/blocks")));
    let s = Settings::resolve(args("s3://bucket/traces")).unwrap();
    assert_eq!(
        s.storage,
        Storage::Object {
            url: "s3://bucket/traces".into(),
            node_id: None,
            cache_size: 1 << 30,
            poll_interval: Duration::from_secs(5),
        }
    );
    assert_eq!(s.max_block_age(), Duration::from_secs(30), "cluster mode cuts heads sooner");
    let e = Settings::resolve(args("ftp://host/x")).unwrap_err().to_string();
    assert!(e.contains("--storage") && e.contains("s3://BUCKET/PREFIX"), "{e}");
    let e = Settings::resolve(args("s3://b").with("node-id", "../etc")).unwrap_err().to_string();
    assert!(e.contains("--node-id"), "{e}");
    let e = Settings::resolve(args("s3://b").with("cache-size", "1KiB")).unwrap_err().to_string();
    assert!(e.contains("--cache-size"), "{e}");
    // The lossless mode copies the WAL into the shared bucket: none, no mode.
    let s = Settings::resolve(args("s3://b").with("durability", "bucket")).unwrap();
    assert!(s.durability_bucket);
    assert_eq!(s.dead_node_after, Duration::from_secs(120));
    let e = Settings::resolve(args("/mnt/blocks").with("durability", "bucket")).unwrap_err().to_string();
    assert!(e.contains("--durability bucket needs --storage s3://"), "{e}");
    let e = Settings::resolve(args("s3://b").with("durability", "cloud")).unwrap_err().to_string();
    assert!(e.contains("--durability") && e.contains("local or bucket"), "{e}");
    let e = Settings::resolve(args("s3://b").with("dead-node-after", "1s")).unwrap_err().to_string();
    assert!(e.contains("--dead-node-after"), "{e}");
    // The default lease TTL (60s) gives a 45s liveness window: a shorter
    // --dead-node-after would replay a live node's copies.
    assert_eq!(s.lease_ttl, Duration::from_secs(60));
    let lossless = |dead: &str, ttl: &str| {
        Settings::resolve(
            args("s3://b").with("durability", "bucket").with("dead-node-after", dead).with("lease-ttl", ttl),
        )
    };
    let e = lossless("40s", "60s").unwrap_err().to_string();
    assert!(
        e.contains(
            "--dead-node-after 40s must be longer than the heartbeat liveness window of --lease-ttl 60s (45s"
        ),
        "{e}"
    );
    assert_eq!(lossless("46s", "60s").unwrap().dead_node_after, Duration::from_secs(46));
    assert_eq!(lossless("5s", "4s").unwrap().lease_ttl, Duration::from_secs(4));
    // Without the lossless mode --dead-node-after is unused: not checked.
    assert!(Settings::resolve(args("s3://b").with("lease-ttl", "10m")).is_ok());
    let e = Settings::resolve(args("s3://b").with("lease-ttl", "1s")).unwrap_err().to_string();
    assert!(e.contains("--lease-ttl"), "{e}");
    assert_eq!(s.idle_poll_interval, Duration::from_secs(30));
}

/// `deploy/` configures nodes through `SIGHTLINE_*` variables only; every
/// one must name a real setting, and every value written there must parse,
/// so the examples stay true as settings change. `$(VAR)` (Kubernetes'
/// substitution) stands for a name and is replaced by one.
#[test]
fn deploy_files_name_only_real_settings() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut files = vec![root.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("SIGHTLINE_") {
            let rest = &text[at..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let env = &rest[..name_len];
            if env == "SIGHTLINE_" {
                continue; // `SIGHTLINE_*`, the pattern
            }
            let where_ = format!("{}: {env}", path.display());
            let setting = defs::SETTINGS
                .iter()
                .find(|s| s.env() == env)
                .unwrap_or_else(|| panic!("{where_} is no setting"));
            let after = &rest[name_len..];
            let value = if let Some(v) = after.strip_prefix('=') {
                v.split_whitespace().next().unwrap_or("")
            } else if let Some(v) = after.strip_prefix(", value: ") {
                v.split('}').next().unwrap()
            } else if after.starts_with('\n') {
                after.trim_start().strip_prefix("value: ").map_or("", |v| v.lines().next().unwrap())
            } else {
                ""
            };
            let value = value.trim().trim_matches('"');
            if value.is_empty() {
                continue;
            }
            let value =
                value.replace("$(POD_NAME)", "sightline-0").replace("$(POD_NAMESPACE)", "observability");
            (setting.apply)(&mut Settings::blank(), &value)
                .unwrap_or_else(|e| panic!("{where_}={value}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} values found under deploy/");
}

/// Issue 13: what a node advertises to its peers, the peer list, and the
/// refusals with what to do instead.
#[test]
fn peers_and_the_advertised_address() {
    let resolve = |args: ServeArgs| Settings::resolve(args);
    let s3 = || ServeArgs::default().with("storage", "s3://bucket/prefix");
    // Default: --http-addr, unless it names no reachable address.
    assert_eq!(resolve(s3()).unwrap().advertise_addr().as_deref(), Some("127.0.0.1:16686"));
    assert_eq!(resolve(s3().with("http-addr", "0.0.0.0:16686")).unwrap().advertise_addr(), None);
    let named =
        resolve(s3().with("http-addr", "0.0.0.0:16686").with("advertise-addr", "Node-1.sightline:16686"))
            .unwrap();
    assert_eq!(named.advertise_addr().as_deref(), Some("Node-1.sightline:16686"));
    // Peers address the node by that name: the Host check lets it in.
    assert!(named.allowed_hosts.allows("node-1.sightline:16686"));
    let listed = resolve(s3().with("peers", " 10.0.0.1:16686, node-2:16686,")).unwrap();
    assert_eq!(listed.peers, ["10.0.0.1:16686", "node-2:16686"]);
    assert_eq!(listed.peer_timeout, Duration::from_secs(2));
    let bad = |args: ServeArgs| resolve(args).unwrap_err().to_string();
    assert!(bad(s3().with("peers", "10.0.0.1")).contains("HOST:PORT"));
    assert!(bad(s3().with("advertise-addr", "node:0")).contains("--advertise-addr"));
    assert!(bad(s3().with("advertise-addr", "a/b:1")).contains("HOST:PORT"));
    assert!(
        bad(ServeArgs::default().with("peers", "10.0.0.1:16686")).contains("--peers needs --storage s3://")
    );
    assert!(resolve(s3().with("advertise-addr", "[::1]:16686")).is_ok());
}
