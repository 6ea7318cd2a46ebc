//! Every `serve` setting, defined once.
//!
//! A [`Setting`] names a flag (`--data-dir`); the environment variable
//! (`SIGHTLINE_DATA_DIR`) and the config-file key (`data_dir`) derive from
//! the name. Its value name, default and help text feed `--help`, the
//! config file's list of valid keys and the README's settings table (a
//! test fails when the README disagrees), and its `apply` function parses
//! a value into [`Settings`]. Adding a setting is one entry here and a
//! field in `Settings` — in the spirit of ripgrep's `flags/defs.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use sightline_guard::browser::AllowedHosts;
use sightline_pipeline::config::parse_size;

use super::{LogFormat, MetricsAuth, Settings, parse_duration, parse_optional};

/// One setting.
pub(crate) struct Setting {
    /// The flag without dashes, e.g. `data-dir`.
    pub(crate) name: &'static str,
    /// What the value is, for `--help` (`DIR`, `SIZE`).
    pub(crate) value_name: &'static str,
    /// The default.
    pub(crate) default: Default,
    /// One line for `--help` and the README (Markdown code spans allowed).
    pub(crate) help: &'static str,
    /// Parses `value` into the settings; `Err` says what was expected.
    pub(crate) apply: fn(&mut Settings, &str) -> Result<(), &'static str>,
    /// Whether the config file may set it (not `--config` itself).
    pub(crate) in_file: bool,
}

/// A setting's default.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Default {
    /// Applied like any value before the file and flags are.
    Value(&'static str),
    /// Derived from other settings; the text says how (for docs).
    Derived(&'static str),
    /// Unset unless given.
    None,
}

impl Setting {
    /// `--name`.
    pub(crate) fn flag(&self) -> String {
        format!("--{}", self.name)
    }

    /// `SIGHTLINE_NAME`.
    pub(crate) fn env(&self) -> String {
        format!("SIGHTLINE_{}", self.name.replace('-', "_").to_ascii_uppercase())
    }

    /// `name` in snake_case, the config-file key.
    pub(crate) fn key(&self) -> String {
        self.name.replace('-', "_")
    }
}

fn addr(value: &str) -> Result<SocketAddr, &'static str> {
    value.trim().parse::<SocketAddr>().map_err(|_| "host:port, e.g. 127.0.0.1:4317")
}

/// `HOST:PORT` where HOST is a name or an IP address (in brackets for
/// IPv6) and PORT is not 0.
fn host_port(value: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "HOST:PORT, e.g. 10.0.0.5:16686 or node-1.sightline:16686";
    let value = value.trim();
    let (host, port) = value.rsplit_once(':').ok_or(EXPECTED)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    if port_ok && host_ok { Ok(value.to_owned()) } else { Err(EXPECTED) }
}

fn size_at_least(value: &str, min: u64, expected: &'static str) -> Result<usize, &'static str> {
    parse_size(value).filter(|n| *n >= min).and_then(|n| usize::try_from(n).ok()).ok_or(expected)
}

fn timeout(value: &str) -> Result<std::time::Duration, &'static str> {
    parse_duration(value).ok_or("a duration like 10s, 500ms or 2m")
}

fn path(value: &str) -> Option<PathBuf> {
    let value = value.trim();
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Every setting of `sightline serve`, in the order `--help` and the README
/// list them.
pub(crate) static SETTINGS: &[Setting] = &[
    Setting {
        name: "data-dir",
        value_name: "DIR",
        default: Default::Value("./sightline-data"),
        help: "WAL, blocks, manifest (blocks elsewhere with `--storage`); the log store's under `logs/`",
        apply: |s, v| {
            s.data_dir = path(v).ok_or("a directory path")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "otlp-grpc-addr",
        value_name: "ADDR",
        default: Default::Value("127.0.0.1:4317"),
        help: "OTLP/gRPC listen address",
        apply: |s, v| {
            s.otlp_grpc_addr = addr(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "otlp-http-addr",
        value_name: "ADDR",
        default: Default::Value("127.0.0.1:4318"),
        help: "OTLP/HTTP listen address",
        apply: |s, v| {
            s.otlp_http_addr = addr(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "http-addr",
        value_name: "ADDR",
        default: Default::Value("127.0.0.1:16686"),
        help: "query API, UI, `/metrics`, `/health`, `/ready`",
        apply: |s, v| {
            s.http_addr = addr(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "zipkin-addr",
        value_name: "ADDR",
        default: Default::Derived("127.0.0.1:9411"),
        help: "Zipkin v2 `POST /api/v2/spans`; overrides the pipeline config's Zipkin endpoint",
        apply: |s, v| {
            s.zipkin_addr = Some(addr(v)?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "metrics-remote-write",
        value_name: "URL",
        default: Default::None,
        help: "forward received OTLP metrics by Prometheus remote write to this `http://` URL (e.g. \
               `http://127.0.0.1:9090/api/v1/write`): the `prometheusremotewrite` exporter, added to every \
               metrics pipeline",
        apply: |s, v| {
            let v = v.trim();
            if !v.starts_with("http://") {
                return Err("an http:// URL, e.g. http://127.0.0.1:9090/api/v1/write");
            }
            s.metrics_remote_write = Some(v.to_owned());
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "retention",
        value_name: "AGE",
        default: Default::Value("7d"),
        help: "delete traces older than this; `off` keeps everything",
        apply: |s, v| {
            s.retention =
                parse_optional(v, super::parse_duration).ok_or("a duration like 7d, 12h, 30m, or off")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "max-disk",
        value_name: "SIZE",
        default: Default::Value("off"),
        help: "e.g. `50GiB`: the oldest blocks go first beyond it (log blocks get a quarter, trace blocks the rest)",
        apply: |s, v| {
            s.max_disk = parse_optional(v, parse_size).ok_or("a size like 10GiB, 500MB, or off")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "wal-fsync",
        value_name: "POLICY",
        default: Default::Value("always"),
        help: "when WAL writes are synced before an export is acknowledged: `always`, `interval:100ms`, `never`",
        apply: |s, v| {
            s.wal_fsync =
                v.parse().map_err(|_| "always, never, or interval:<duration> (e.g. interval:100ms)")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "wal-recovery",
        value_name: "MODE",
        default: Default::Value("skip-damaged"),
        help: "`skip-damaged` skips a damaged record and keeps every valid one after it; \
               `tolerate-torn-tail` stops the start on any damage but an interrupted last write; \
               `point-in-time` keeps the records before damage in the newest segment",
        apply: |s, v| {
            s.wal_recovery = v.parse().map_err(|_| "skip-damaged, tolerate-torn-tail or point-in-time")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "max-message-size",
        value_name: "SIZE",
        default: Default::Value("20MiB"),
        help: "per gRPC message / HTTP body, after decompression too",
        apply: |s, v| {
            s.max_message_size = size_at_least(v, 1024, "a size of at least 1KiB, e.g. 20MiB")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "memory-limit",
        value_name: "SIZE",
        default: Default::Value("256MiB"),
        help: "memory for data in flight and in the head; beyond it exports get retryable refusals",
        apply: |s, v| {
            s.memory_limit = size_at_least(v, 16 << 20, "a size of at least 16MiB, e.g. 256MiB")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "head-max-size",
        value_name: "SIZE",
        default: Default::Derived("memory limit / 16"),
        help: "cut the in-memory head into a block at this size",
        apply: |s, v| {
            s.head_max_size = Some(size_at_least(v, 64 << 10, "a size of at least 64KiB, e.g. 32MiB")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "storage",
        value_name: "PATH|URL",
        default: Default::Derived("--data-dir"),
        help: "where blocks live: a folder, or `s3://BUCKET/PREFIX`, `gs://…`, `az://…` shared by many nodes \
               (credentials and endpoint from the standard `AWS_*`/`GOOGLE_*`/`AZURE_*` variables); the WAL \
               stays in `--data-dir`",
        apply: |s, v| {
            let v = v.trim();
            if v.is_empty() {
                return Err("a folder, s3://BUCKET/PREFIX, gs://… or az://…");
            }
            if sightline_objstore::is_url(v) {
                let scheme = v.split("://").next().unwrap_or_default();
                if !matches!(scheme, "s3" | "s3a" | "gs" | "az" | "azure") {
                    return Err("a folder, s3://BUCKET/PREFIX, gs://… or az://…");
                }
            }
            s.storage_arg = Some(v.to_owned());
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "node-id",
        value_name: "ID",
        default: Default::Derived("generated, kept in `<data-dir>/node-id`"),
        help: "a node's name in a shared bucket; keep it stable",
        apply: |s, v| {
            sightline_objstore::check_name("node id", v.trim())
                .map_err(|_| "1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or _")?;
            s.node_id = Some(v.trim().to_owned());
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "cache-size",
        value_name: "SIZE",
        default: Default::Value("1GiB"),
        help: "local disk cache of blocks read from an object store",
        apply: |s, v| {
            s.cache_size = size_at_least(v, 16 << 20, "a size of at least 16MiB, e.g. 1GiB")? as u64;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "max-block-age",
        value_name: "AGE",
        default: Default::Derived("`2m`; `30s` with an object store"),
        help: "cut the head into a block at least this often: how long a span is visible only on the node \
               that received it",
        apply: |s, v| {
            s.max_block_age = Some(timeout(v)?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "durability",
        value_name: "MODE",
        default: Default::Value("local"),
        help: "`local`: an OK means fsynced into this node's WAL (a node whose disk is lost loses at most \
               `--max-block-age` of its ingest); `bucket` (with an object store): each WAL group commit is \
               also written to the bucket before the OK, and the lease holder replays a dead node's copies, \
               so a lost disk loses nothing",
        apply: |s, v| {
            s.durability_bucket = match v.trim() {
                "local" => false,
                "bucket" => true,
                _ => return Err("local or bucket"),
            };
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "dead-node-after",
        value_name: "DURATION",
        default: Default::Value("2m"),
        help: "with `--durability bucket`: how long a node's heartbeat and newest WAL copy must be old before \
               the lease holder replays its copies; must exceed the heartbeat liveness window (three \
               quarters of `--lease-ttl`), or a live node's copies would be replayed",
        apply: |s, v| {
            let d = timeout(v)?;
            if d < std::time::Duration::from_secs(5) {
                return Err("a duration of at least 5s (30s or more outside tests), e.g. 2m");
            }
            s.dead_node_after = d;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "poll-interval",
        value_name: "DURATION",
        default: Default::Value("5s"),
        help: "how often a node looks for blocks other nodes wrote to the object store (a conditional GET)",
        apply: |s, v| {
            s.poll_interval = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "idle-poll-interval",
        value_name: "DURATION",
        default: Default::Value("30s"),
        help: "the longest wait between two manifest polls while nothing changes and nobody queries this \
               node: the wait doubles from `--poll-interval` up to this while idle (every poll is a billed \
               request); the first query after an idle stretch may miss blocks flushed within it",
        apply: |s, v| {
            s.idle_poll_interval = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "lease-ttl",
        value_name: "DURATION",
        default: Default::Value("60s"),
        help: "how long the compaction lease lasts unrenewed; heartbeats and renewals run every quarter of it \
               and a node counts as live for three quarters after its last heartbeat. Shorter: faster \
               failover and peer discovery, more billed requests (60s: 12 a minute; 30s: 24)",
        apply: |s, v| {
            let d = timeout(v)?;
            if d < std::time::Duration::from_secs(2) {
                return Err("a duration of at least 2s (30s or more outside tests), e.g. 60s");
            }
            s.lease_ttl = d;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "advertise-addr",
        value_name: "HOST:PORT",
        default: Default::Derived("`--http-addr` unless it is a wildcard"),
        help: "where other nodes sharing the object store reach this node's query API to read its head \
               (written into its heartbeat)",
        apply: |s, v| {
            s.advertise_addr = Some(host_port(v)?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "peers",
        value_name: "LIST",
        default: Default::None,
        help: "`HOST:PORT` of other nodes' query APIs, comma-separated, asked for their heads besides the \
               nodes found through heartbeats (this node's own address is skipped)",
        apply: |s, v| {
            s.peers = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(host_port)
                .collect::<Result<_, _>>()?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "peer-timeout",
        value_name: "DURATION",
        default: Default::Value("2s"),
        help: "how long a query waits for each peer's head; a peer slower than that is left out and named \
               in the answer's warnings",
        apply: |s, v| {
            s.peer_timeout = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "peer-ca",
        value_name: "FILE",
        default: Default::Derived("the system's root certificates"),
        help: "PEM CA certificates a peer's certificate must chain to when nodes speak TLS (`--tls-cert`): \
               peers are then asked over https and verified against these only",
        apply: |s, v| {
            s.peer_ca = Some(path(v).ok_or("a file path")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "header-timeout",
        value_name: "DURATION",
        default: Default::Value("10s"),
        help: "time for a request's headers (and a TLS handshake) to arrive",
        apply: |s, v| {
            s.header_timeout = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "body-timeout",
        value_name: "DURATION",
        default: Default::Value("30s"),
        help: "time for an export's body to arrive; slower senders get 408",
        apply: |s, v| {
            s.body_timeout = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "idle-timeout",
        value_name: "DURATION",
        default: Default::Value("60s"),
        help: "close connections without traffic or requests for this long",
        apply: |s, v| {
            s.idle_timeout = timeout(v)?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "auth-tokens",
        value_name: "FILE",
        default: Default::None,
        help: "token file, `TOKEN TENANT ROLES` per line (roles `read`,`write`); then every request needs \
               a token (`Authorization: Bearer`, or Basic with the token as password); reloaded on change \
               and SIGHUP",
        apply: |s, v| {
            s.auth_tokens = Some(path(v).ok_or("a file path")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "max-tenants",
        value_name: "N",
        default: Default::Value("64"),
        help: "most tenants kept apart (each its own WAL, head and blocks; all heads share one byte budget); \
               writes of a tenant beyond it are refused with 429",
        apply: |s, v| {
            s.max_tenants = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or("a number from 1 to 100000")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "metrics-auth",
        value_name: "MODE",
        default: Default::Value("open"),
        help: "`token`: `/metrics` needs a token with the `read` role (`/health`, `/ready` stay open)",
        apply: |s, v| {
            s.metrics_auth = match v.trim() {
                "open" => MetricsAuth::Open,
                "token" => MetricsAuth::Token,
                _ => return Err("open or token"),
            };
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "tls-cert",
        value_name: "FILE",
        default: Default::None,
        help: "PEM certificate chain: every listener then speaks TLS only; reloaded when it changes",
        apply: |s, v| {
            s.tls_cert = Some(path(v).ok_or("a file path")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "tls-key",
        value_name: "FILE",
        default: Default::None,
        help: "PEM private key of `--tls-cert`",
        apply: |s, v| {
            s.tls_key = Some(path(v).ok_or("a file path")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "tls-client-ca",
        value_name: "FILE",
        default: Default::None,
        help: "PEM CA certificates: clients must present a certificate they signed (mutual TLS)",
        apply: |s, v| {
            s.tls_client_ca = Some(path(v).ok_or("a file path")?);
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "allowed-hosts",
        value_name: "HOSTS",
        default: Default::Derived("IP addresses, localhost"),
        help: "more names requests may address in `Host`, comma-separated (e.g. `sightline.internal`; \
               `.peers.ns.svc` for every name under it); `*` for any. Others get 421: a web page cannot reach the server through DNS rebinding",
        apply: |s, v| {
            s.allowed_hosts =
                AllowedHosts::parse(v).map_err(|_| "host names (or .domains) separated by commas, or *")?;
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "log-format",
        value_name: "FORMAT",
        default: Default::Value("text"),
        help: "`text`, or `json` for log pipelines",
        apply: |s, v| {
            s.log_format = match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err("text or json"),
            };
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "log-level",
        value_name: "FILTER",
        default: Default::Value("info"),
        help: "a `tracing` filter, e.g. `info` or `sightline_store=debug,info` (`object_store` logs at `warn` \
               unless the filter names it)",
        apply: |s, v| {
            s.log_level = v.trim().to_owned();
            Ok(())
        },
        in_file: true,
    },
    Setting {
        name: "config",
        value_name: "FILE",
        default: Default::None,
        help: "a TOML file with any of these settings (snake_case keys) and the pipeline sections",
        apply: |_, _| Ok(()),
        in_file: false,
    },
];

/// The setting named `name` (flag without dashes).
pub(crate) fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The README's settings table, generated from [`SETTINGS`] (checked
/// against README.md by a test).
#[cfg(test)]
pub(crate) fn readme_table() -> String {
    let mut out = String::from("| flag | env | default | |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = match s.default {
            Default::Value(v) => format!("`{v}`"),
            Default::Derived(v) if v.contains(' ') => v.to_owned(),
            Default::Derived(v) => format!("`{v}`"),
            Default::None => String::new(),
        };
        out.push_str(&format!("| `{}` | `{}` | {default} | {} |\n", s.flag(), s.env(), s.help));
    }
    out
}
