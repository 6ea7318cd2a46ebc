//! `serve` settings: flags, `SIGHTLINE_*` environment variables and an
//! optional TOML file, merged and validated before anything opens a port.
//!
//! Precedence: flag, then environment variable (clap reads both), then the
//! config file, then the default. Every problem is reported as one line
//! naming the setting the way the user wrote it and how to fix it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use sightline_pipeline::config::parse_size;
use sightline_store::{FsyncPolicy, WalRecovery};

/// Flags of `sightline serve`. Every flag is optional here so the config
/// file can fill what the command line leaves out; defaults live in
/// [`Settings::resolve`].
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServeArgs {
    /// TOML file with any of the settings below (keys: data_dir,
    /// otlp_grpc_addr, …); flags and environment variables override it.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where WAL, blocks and manifest live [default: ./sightline-data]
    #[arg(long, env = "SIGHTLINE_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317]
    #[arg(long, env = "SIGHTLINE_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub(crate) otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318]
    #[arg(long, env = "SIGHTLINE_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub(crate) otlp_http_addr: Option<String>,
    /// Query API, /metrics, /health and /ready [default: 127.0.0.1:16686]
    #[arg(long, env = "SIGHTLINE_HTTP_ADDR", value_name = "ADDR")]
    pub(crate) http_addr: Option<String>,
    /// Delete traces older than this, e.g. 7d, 12h; "off" keeps them [default: 7d]
    #[arg(long, env = "SIGHTLINE_RETENTION", value_name = "AGE")]
    pub(crate) retention: Option<String>,
    /// Delete the oldest blocks beyond this size, e.g. 10GiB; "off" for no cap [default: off]
    #[arg(long, env = "SIGHTLINE_MAX_DISK", value_name = "SIZE")]
    pub(crate) max_disk: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "SIGHTLINE_LOG_FORMAT", value_name = "FORMAT")]
    pub(crate) log_format: Option<String>,
    /// Log filter, e.g. info or sightline_store=debug [default: info]
    #[arg(long, env = "SIGHTLINE_LOG_LEVEL", value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// When WAL writes are synced before an export is acknowledged:
    /// always, interval:<duration> (e.g. interval:100ms) or never [default: always]
    #[arg(long, env = "SIGHTLINE_WAL_FSYNC", value_name = "POLICY")]
    pub(crate) wal_fsync: Option<String>,
    /// WAL recovery: skip-damaged (skip damaged records, keep every valid
    /// one after them), tolerate-torn-tail (only an interrupted last write
    /// is cut; any other damage stops the start) or point-in-time (keep the
    /// records before the first damage in the newest segment) [default: skip-damaged]
    #[arg(long, env = "SIGHTLINE_WAL_RECOVERY", value_name = "MODE")]
    pub(crate) wal_recovery: Option<String>,
    /// Largest OTLP message accepted (gRPC message, HTTP body after decompression) [default: 20MiB]
    #[arg(long, env = "SIGHTLINE_MAX_MESSAGE_SIZE", value_name = "SIZE")]
    pub(crate) max_message_size: Option<String>,
    /// Memory budget for data in flight and in the head; beyond it exports get retryable refusals [default: 256MiB]
    #[arg(long, env = "SIGHTLINE_MEMORY_LIMIT", value_name = "SIZE")]
    pub(crate) memory_limit: Option<String>,
    /// Cut the in-memory head into a block at this size; smaller means
    /// smaller blocks (compaction merges them) and a faster restart
    /// [default: memory limit / 16]
    #[arg(long, env = "SIGHTLINE_HEAD_MAX_SIZE", value_name = "SIZE")]
    pub(crate) head_max_size: Option<String>,
    /// Zipkin v2 receiver listen address (POST /api/v2/spans) [default: 127.0.0.1:9411]
    #[arg(long, env = "SIGHTLINE_ZIPKIN_ADDR", value_name = "ADDR")]
    pub(crate) zipkin_addr: Option<String>,
    /// Where blocks and their manifest live: a folder, or an object store
    /// shared by any number of nodes (s3://BUCKET/PREFIX, gs://…, az://…;
    /// credentials and endpoint from the standard AWS_*/GOOGLE_*/AZURE_*
    /// variables). The WAL stays in --data-dir [default: --data-dir]
    #[arg(long, env = "SIGHTLINE_STORAGE", value_name = "PATH|URL")]
    pub(crate) storage: Option<String>,
    /// This node's id among the nodes sharing an object store; stable
    /// across restarts [default: generated once, kept in <data-dir>/node-id]
    #[arg(long, env = "SIGHTLINE_NODE_ID", value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// Local disk cache for blocks read from an object store [default: 1GiB]
    #[arg(long, env = "SIGHTLINE_CACHE_SIZE", value_name = "SIZE")]
    pub(crate) cache_size: Option<String>,
    /// Cut the head into a block at least this often: bounds how long a
    /// span is visible only on the node that received it, and what a node
    /// whose disk is lost for good loses [default: 2m; 30s with an object store]
    #[arg(long, env = "SIGHTLINE_MAX_BLOCK_AGE", value_name = "AGE")]
    pub(crate) max_block_age: Option<String>,
    /// How often a node looks for blocks other nodes wrote to the object
    /// store (one conditional GET, 304 when nothing changed) [default: 5s]
    #[arg(long, env = "SIGHTLINE_POLL_INTERVAL", value_name = "DURATION")]
    pub(crate) poll_interval: Option<String>,
}

/// The config file: the same settings as the flags, snake_case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    otlp_grpc_addr: Option<String>,
    otlp_http_addr: Option<String>,
    http_addr: Option<String>,
    retention: Option<String>,
    max_disk: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    wal_fsync: Option<String>,
    wal_recovery: Option<String>,
    max_message_size: Option<String>,
    memory_limit: Option<String>,
    zipkin_addr: Option<String>,
    head_max_size: Option<String>,
    storage: Option<String>,
    node_id: Option<String>,
    cache_size: Option<String>,
    max_block_age: Option<String>,
    poll_interval: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Validated settings for `serve`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) otlp_grpc_addr: SocketAddr,
    pub(crate) otlp_http_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    pub(crate) retention: Option<Duration>,
    pub(crate) max_disk: Option<u64>,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
    pub(crate) wal_fsync: FsyncPolicy,
    pub(crate) wal_recovery: WalRecovery,
    pub(crate) max_message_size: usize,
    pub(crate) memory_limit: usize,
    /// Head size at which it is cut into a block.
    pub(crate) head_max_size: usize,
    pub(crate) pipeline: sightline_pipeline::config::PipelineConfig,
    pub(crate) storage: Storage,
    /// Cut the head at least this often.
    pub(crate) max_block_age: Duration,
}

/// Where blocks live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Storage {
    /// A local folder only this process writes (the data directory by
    /// default).
    Local(PathBuf),
    /// An object store shared with other nodes.
    Object {
        url: String,
        /// `None`: generated once and kept in the data directory.
        node_id: Option<String>,
        cache_size: u64,
        poll_interval: Duration,
    },
}

/// Settings that failed validation: every problem, one line each.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) Vec<String>);

impl std::fmt::Display for ConfigError {
    /// The first problem, and how many more there are: `serve` prints one
    /// line; `validate-config` prints them all.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.0.first().map(String::as_str).unwrap_or("invalid settings");
        match self.0.len() {
            0 | 1 => write!(f, "{first}"),
            n => write!(f, "{first} (and {} more; `sightline validate-config FILE` lists all)", n - 1),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where a raw value came from, to name it in errors.
struct Source<'a> {
    flag: &'a str,
}

impl Source<'_> {
    fn err(&self, value: &str, expected: &str) -> String {
        let key = self.flag.trim_start_matches("--").replace('-', "_");
        let env = format!("SIGHTLINE_{}", key.to_ascii_uppercase());
        format!(
            "invalid value {value:?} for {} (env {env}, config key {key}): expected {expected}",
            self.flag
        )
    }
}

/// `--zipkin-addr` overrides the pipeline config's Zipkin endpoint.
fn with_zipkin_addr(
    mut pipeline: sightline_pipeline::config::PipelineConfig,
    addr: Option<SocketAddr>,
) -> sightline_pipeline::config::PipelineConfig {
    use sightline_pipeline::receiver::ZipkinConfig;
    if let Some(addr) = addr {
        for receiver in pipeline.receivers.values_mut() {
            if receiver.settings::<ZipkinConfig>().is_some() {
                *receiver = receiver.with_settings(ZipkinConfig { endpoint: addr });
            }
        }
    }
    pipeline
}

/// Keeps a valid value, or records the problem.
fn check<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// Reads a config file: the serve keys, and the pipeline sections as a
/// raw table for the pipeline crate.
fn read_file(path: &std::path::Path) -> Result<(FileConfig, toml::Table), ConfigError> {
    let one = |msg: String| ConfigError(vec![msg]);
    let text = std::fs::read_to_string(path)
        .map_err(|e| one(format!("cannot read --config {}: {e}; check the path", path.display())))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        one(format!("invalid config file {}: {}", path.display(), e.message().replace('\n', " ")))
    })?;
    let mut pipeline = toml::Table::new();
    for section in sightline_pipeline::config::SECTIONS {
        if let Some(v) = table.remove(*section) {
            pipeline.insert((*section).to_owned(), v);
        }
    }
    let file = FileConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
        one(format!(
            "invalid config file {}: {}; valid keys are data_dir, otlp_grpc_addr, otlp_http_addr, http_addr, \
             retention, max_disk, log_format, log_level, wal_fsync, wal_recovery, max_message_size, memory_limit, \
             zipkin_addr, head_max_size, storage, node_id, cache_size, max_block_age, poll_interval, and the \
             sections receivers, processors, exporters, service",
            path.display(),
            e.message().replace('\n', " ")
        ))
    })?;
    Ok((file, pipeline))
}

impl Settings {
    /// Merges flags/env with the config file and validates everything,
    /// collecting every problem.
    pub(crate) fn resolve(args: ServeArgs) -> Result<Settings, ConfigError> {
        let (file, pipeline_table) = match &args.config {
            Some(path) => read_file(path)?,
            None => (FileConfig::default(), toml::Table::new()),
        };
        let mut errors: Vec<String> = Vec::new();
        let pick = |cli: Option<String>, file: Option<String>, default: &str| {
            cli.or(file).unwrap_or_else(|| default.to_owned())
        };
        let addr = |flag: &str, value: String| {
            value
                .parse::<SocketAddr>()
                .map_err(|_| Source { flag }.err(&value, "host:port, e.g. 127.0.0.1:4317"))
        };
        let otlp_grpc_addr = check(
            &mut errors,
            addr("--otlp-grpc-addr", pick(args.otlp_grpc_addr, file.otlp_grpc_addr, "127.0.0.1:4317")),
        );
        let otlp_http_addr = check(
            &mut errors,
            addr("--otlp-http-addr", pick(args.otlp_http_addr, file.otlp_http_addr, "127.0.0.1:4318")),
        );
        let http_addr =
            check(&mut errors, addr("--http-addr", pick(args.http_addr, file.http_addr, "127.0.0.1:16686")));
        let zipkin_addr = args.zipkin_addr.or(file.zipkin_addr);
        let zipkin_addr = match zipkin_addr {
            Some(z) => check(&mut errors, addr("--zipkin-addr", z).map(Some)),
            None => Some(None),
        };
        let retention = pick(args.retention, file.retention, "7d");
        let retention = check(
            &mut errors,
            parse_optional(&retention, parse_duration).ok_or_else(|| {
                Source { flag: "--retention" }.err(&retention, "a duration like 7d, 12h, 30m, or off")
            }),
        );
        let max_disk = pick(args.max_disk, file.max_disk, "off");
        let max_disk = check(
            &mut errors,
            parse_optional(&max_disk, parse_size).ok_or_else(|| {
                Source { flag: "--max-disk" }.err(&max_disk, "a size like 10GiB, 500MB, or off")
            }),
        );
        let log_format = pick(args.log_format, file.log_format, "text");
        let log_format = check(
            &mut errors,
            match log_format.as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(Source { flag: "--log-format" }.err(other, "text or json")),
            },
        );
        let wal_fsync = pick(args.wal_fsync, file.wal_fsync, "always");
        let wal_fsync = check(
            &mut errors,
            wal_fsync.parse::<FsyncPolicy>().map_err(|_| {
                Source { flag: "--wal-fsync" }
                    .err(&wal_fsync, "always, never, or interval:<duration> (e.g. interval:100ms)")
            }),
        );
        let wal_recovery = pick(args.wal_recovery, file.wal_recovery, "skip-damaged");
        let wal_recovery = check(
            &mut errors,
            wal_recovery.parse::<WalRecovery>().map_err(|_| {
                Source { flag: "--wal-recovery" }
                    .err(&wal_recovery, "skip-damaged, tolerate-torn-tail or point-in-time")
            }),
        );
        let max_message_size = pick(args.max_message_size, file.max_message_size, "20MiB");
        let max_message_size = check(
            &mut errors,
            parse_size(&max_message_size).filter(|n| *n >= 1024).ok_or_else(|| {
                Source { flag: "--max-message-size" }
                    .err(&max_message_size, "a size of at least 1KiB, e.g. 20MiB")
            }),
        );
        let memory_limit = pick(args.memory_limit, file.memory_limit, "256MiB");
        let memory_limit = check(
            &mut errors,
            parse_size(&memory_limit).filter(|n| *n >= 16 << 20).ok_or_else(|| {
                Source { flag: "--memory-limit" }.err(&memory_limit, "a size of at least 16MiB, e.g. 256MiB")
            }),
        );
        let head_max_size = match args.head_max_size.or(file.head_max_size) {
            None => memory_limit.map(|m| sightline_model::MemoryBudget::new(m).head_bytes() as u64),
            Some(h) => check(
                &mut errors,
                parse_size(&h).filter(|n| *n >= 64 << 10).ok_or_else(|| {
                    Source { flag: "--head-max-size" }.err(&h, "a size of at least 64KiB, e.g. 32MiB")
                }),
            ),
        };
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./sightline-data"));
        let storage = resolve_storage(
            &mut errors,
            &data_dir,
            args.storage.or(file.storage),
            args.node_id.or(file.node_id),
            args.cache_size.or(file.cache_size),
            args.poll_interval.or(file.poll_interval),
        );
        let remote = matches!(storage, Some(Storage::Object { .. }));
        let max_block_age = pick(args.max_block_age, file.max_block_age, if remote { "30s" } else { "2m" });
        let max_block_age = check(
            &mut errors,
            parse_duration(&max_block_age).ok_or_else(|| {
                Source { flag: "--max-block-age" }.err(&max_block_age, "a duration like 30s or 2m")
            }),
        );
        let ctx = sightline_pipeline::config::Context {
            data_dir: data_dir.clone(),
            memory_limit: memory_limit.unwrap_or(256 << 20),
        };
        let pipeline = match sightline_pipeline::config::parse(&pipeline_table, &ctx) {
            Ok(p) => Some(p),
            Err(problems) => {
                errors.extend(problems.iter().map(|p| format!("config {p}")));
                None
            }
        };
        let ports = [
            ("--otlp-grpc-addr", otlp_grpc_addr),
            ("--otlp-http-addr", otlp_http_addr),
            ("--http-addr", http_addr),
        ];
        for (i, (a, addr_a)) in ports.iter().enumerate() {
            for (b, addr_b) in &ports[i + 1..] {
                if let (Some(x), Some(y)) = (addr_a, addr_b)
                    && x.port() != 0
                    && x == y
                {
                    errors.push(format!("{a} and {b} are both {x}: give each listener its own port"));
                }
            }
        }
        match (
            otlp_grpc_addr,
            otlp_http_addr,
            http_addr,
            zipkin_addr,
            retention,
            max_disk,
            log_format,
            wal_fsync,
            wal_recovery,
            max_message_size,
            memory_limit,
            head_max_size,
            pipeline,
            storage,
            max_block_age,
        ) {
            (
                Some(otlp_grpc_addr),
                Some(otlp_http_addr),
                Some(http_addr),
                Some(zipkin_addr),
                Some(retention),
                Some(max_disk),
                Some(log_format),
                Some(wal_fsync),
                Some(wal_recovery),
                Some(max_message_size),
                Some(memory_limit),
                Some(head_max_size),
                Some(pipeline),
                Some(storage),
                Some(max_block_age),
            ) if errors.is_empty() => Ok(Settings {
                storage,
                max_block_age,
                pipeline: with_zipkin_addr(pipeline, zipkin_addr),
                data_dir,
                otlp_grpc_addr,
                otlp_http_addr,
                http_addr,
                retention,
                max_disk,
                log_format,
                log_level: pick(args.log_level, file.log_level, "info"),
                wal_fsync,
                wal_recovery,
                max_message_size: max_message_size as usize,
                memory_limit: memory_limit as usize,
                head_max_size: head_max_size as usize,
            }),
            _ => Err(ConfigError(errors)),
        }
    }
}

/// `--storage` and the settings that only matter with an object store.
fn resolve_storage(
    errors: &mut Vec<String>,
    data_dir: &std::path::Path,
    storage: Option<String>,
    node_id: Option<String>,
    cache_size: Option<String>,
    poll_interval: Option<String>,
) -> Option<Storage> {
    let cache_size = cache_size.unwrap_or_else(|| "1GiB".to_owned());
    let cache_size = check(
        errors,
        parse_size(&cache_size).filter(|n| *n >= 16 << 20).ok_or_else(|| {
            Source { flag: "--cache-size" }.err(&cache_size, "a size of at least 16MiB, e.g. 1GiB")
        }),
    );
    let poll_interval = poll_interval.unwrap_or_else(|| "5s".to_owned());
    let poll_interval = check(
        errors,
        parse_duration(&poll_interval).ok_or_else(|| {
            Source { flag: "--poll-interval" }.err(&poll_interval, "a duration like 5s or 500ms")
        }),
    );
    if let Some(id) = &node_id
        && sightline_objstore::check_name("node id", id).is_err()
    {
        errors.push(
            Source { flag: "--node-id" }
                .err(id, "1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or _"),
        );
    }
    match storage {
        None => Some(Storage::Local(data_dir.to_owned())),
        Some(url) if sightline_objstore::is_url(&url) => {
            let scheme = url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "s3" | "s3a" | "gs" | "az" | "azure") {
                errors.push(
                    Source { flag: "--storage" }.err(&url, "a folder, s3://BUCKET/PREFIX, gs://… or az://…"),
                );
                return None;
            }
            Some(Storage::Object { url, node_id, cache_size: cache_size?, poll_interval: poll_interval? })
        }
        Some(path) => Some(Storage::Local(PathBuf::from(path))),
    }
}

/// `off`/`none`/`0` → `Some(None)`; a valid value → `Some(Some(v))`;
/// invalid → `None`.
fn parse_optional<T>(s: &str, parse: fn(&str) -> Option<T>) -> Option<Option<T>> {
    match s.trim() {
        "off" | "none" | "0" => Some(None),
        v => parse(v).map(Some),
    }
}

/// Parses a duration such as `7d`, `12h`, `90s` or `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn errors_name_the_setting_and_the_fix() {
        let bad = |f: &dyn Fn(&mut ServeArgs)| {
            let mut a = ServeArgs::default();
            f(&mut a);
            Settings::resolve(a).unwrap_err().to_string()
        };
        let e = bad(&|a| a.retention = Some("forever".into()));
        assert_eq!(
            e,
            "invalid value \"forever\" for --retention (env SIGHTLINE_RETENTION, config key retention): \
             expected a duration like 7d, 12h, 30m, or off"
        );
        assert!(bad(&|a| a.http_addr = Some("localhost".into())).contains("--http-addr"));
        assert!(bad(&|a| a.log_format = Some("xml".into())).contains("text or json"));
        assert!(bad(&|a| a.wal_fsync = Some("sometimes".into())).contains("--wal-fsync"));
        assert!(
            bad(&|a| a.otlp_http_addr = Some("127.0.0.1:4317".into())).contains("both 127.0.0.1:4317"),
            "port clash"
        );
    }

    #[test]
    fn storage_is_the_data_dir_a_folder_or_an_object_store() {
        let s = Settings::resolve(ServeArgs::default()).unwrap();
        assert_eq!(s.storage, Storage::Local(PathBuf::from("./sightline-data")));
        assert_eq!(s.max_block_age, Duration::from_secs(120));
        let args = |storage: &str| ServeArgs { storage: Some(storage.into()), ..ServeArgs::default() };
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
        assert_eq!(s.max_block_age, Duration::from_secs(30), "cluster mode cuts heads sooner");
        let e = Settings::resolve(args("ftp://host/x")).unwrap_err().to_string();
        assert!(e.contains("--storage") && e.contains("s3://BUCKET/PREFIX"), "{e}");
        let e = Settings::resolve(ServeArgs { node_id: Some("../etc".into()), ..args("s3://b") })
            .unwrap_err()
            .to_string();
        assert!(e.contains("--node-id"), "{e}");
        let e = Settings::resolve(ServeArgs { cache_size: Some("1KiB".into()), ..args("s3://b") })
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cache-size"), "{e}");
    }

    #[test]
    fn config_file_fills_gaps_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.toml");
        std::fs::write(&path, "data_dir = \"/tmp/x\"\nretention = \"2d\"\nhttp_addr = \"127.0.0.1:9999\"\n")
            .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            http_addr: Some("127.0.0.1:8888".into()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.retention, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8888");

        std::fs::write(&path, "data-dir = \"/tmp/x\"\n").unwrap();
        let e = Settings::resolve(ServeArgs { config: Some(path), ..ServeArgs::default() }).unwrap_err();
        assert!(e.to_string().contains("unknown field `data-dir`"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}
