//! `serve` settings: flags, `SIGHTLINE_*` environment variables and an
//! optional TOML file, merged and validated before anything opens a port.
//!
//! Every setting is defined once, in [`defs::SETTINGS`]; this module turns
//! the table into clap arguments, reads the config file against it, and
//! applies values in precedence order: default, then the config file, then
//! the environment variable, then the flag (clap reads both). Every problem
//! is reported as one line naming the setting the way the user wrote it and
//! how to fix it.

pub(crate) mod defs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use sightline_store::{FsyncPolicy, WalRecovery};

use defs::{Default, SETTINGS, Setting};

/// The `serve` settings given on the command line or in the environment,
/// by setting name; clap's arguments come from [`defs::SETTINGS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeArgs {
    /// Raw values by setting name (`data-dir`).
    pub(crate) values: BTreeMap<&'static str, String>,
}

impl ServeArgs {
    /// Only `--config FILE`, as `validate-config` checks a file.
    pub(crate) fn config_file(path: PathBuf) -> Self {
        let mut values = BTreeMap::new();
        values.insert("config", path.display().to_string());
        ServeArgs { values }
    }

    #[cfg(test)]
    pub(crate) fn with(mut self, name: &'static str, value: &str) -> Self {
        assert!(defs::setting(name).is_some(), "no setting {name}");
        self.values.insert(name, value.to_owned());
        self
    }
}

impl Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        SETTINGS.iter().fold(cmd, |cmd, s| {
            let help = match s.default {
                Default::Value(v) | Default::Derived(v) => {
                    format!("{} [default: {v}]", s.help.replace('`', ""))
                }
                Default::None => s.help.replace('`', ""),
            };
            cmd.arg(
                Arg::new(s.name).long(s.name).env(s.env()).value_name(s.value_name).help(help).num_args(1),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let values = SETTINGS
            .iter()
            .filter_map(|s| matches.get_one::<String>(s.name).map(|v| (s.name, v.clone())))
            .collect();
        Ok(ServeArgs { values })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Whether `/metrics` needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricsAuth {
    Open,
    Token,
}

/// Validated settings for `serve`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) otlp_grpc_addr: SocketAddr,
    pub(crate) otlp_http_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    /// Overrides the pipeline's Zipkin endpoint when set.
    pub(crate) zipkin_addr: Option<SocketAddr>,
    /// Adds a `prometheusremotewrite` exporter to the metrics pipelines.
    pub(crate) metrics_remote_write: Option<String>,
    pub(crate) retention: Option<Duration>,
    pub(crate) max_disk: Option<u64>,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
    pub(crate) wal_fsync: FsyncPolicy,
    pub(crate) wal_recovery: WalRecovery,
    pub(crate) max_message_size: usize,
    pub(crate) memory_limit: usize,
    /// Head size at which it is cut into a block (resolved: memory limit /
    /// 16 unless set).
    pub(crate) head_max_size: Option<usize>,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) auth_tokens: Option<PathBuf>,
    /// Most tenants with their own store, the default one included.
    pub(crate) max_tenants: usize,
    pub(crate) metrics_auth: MetricsAuth,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) tls_client_ca: Option<PathBuf>,
    pub(crate) allowed_hosts: sightline_guard::browser::AllowedHosts,
    pub(crate) pipeline: sightline_pipeline::config::PipelineConfig,
    /// `--storage` as given (`None`: the data directory).
    storage_arg: Option<String>,
    pub(crate) node_id: Option<String>,
    pub(crate) cache_size: u64,
    pub(crate) poll_interval: Duration,
    /// `--idle-poll-interval`.
    pub(crate) idle_poll_interval: Duration,
    /// `--lease-ttl`: also paces the heartbeat.
    pub(crate) lease_ttl: Duration,
    /// `--advertise-addr` as given; see [`Settings::advertise_addr`].
    advertise_addr: Option<String>,
    /// `--peers`: other nodes' query APIs, `HOST:PORT`.
    pub(crate) peers: Vec<String>,
    pub(crate) peer_timeout: Duration,
    /// `--durability bucket`: WAL group commits copied to the object store.
    pub(crate) durability_bucket: bool,
    /// `--dead-node-after`.
    pub(crate) dead_node_after: Duration,
    /// `--peer-ca`: the CA peers' certificates must chain to (instead of
    /// the system's roots).
    pub(crate) peer_ca: Option<PathBuf>,
    /// `--max-block-age` as given; see [`Settings::max_block_age`].
    max_block_age: Option<Duration>,
    /// Where blocks live (resolved from `--storage` and the settings only
    /// an object store uses).
    pub(crate) storage: Storage,
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

impl Settings {
    /// Before any default is applied; every field is overwritten by its
    /// setting's default.
    fn blank() -> Self {
        Settings {
            data_dir: PathBuf::new(),
            otlp_grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            otlp_http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            zipkin_addr: None,
            metrics_remote_write: None,
            retention: None,
            max_disk: None,
            log_format: LogFormat::Text,
            log_level: String::new(),
            wal_fsync: FsyncPolicy::Always,
            wal_recovery: WalRecovery::default(),
            max_message_size: 0,
            memory_limit: 0,
            head_max_size: None,
            header_timeout: Duration::ZERO,
            body_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            auth_tokens: None,
            max_tenants: 0,
            metrics_auth: MetricsAuth::Open,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            allowed_hosts: sightline_guard::browser::AllowedHosts::default(),
            pipeline: sightline_pipeline::config::PipelineConfig {
                receivers: BTreeMap::new(),
                processors: BTreeMap::new(),
                exporters: BTreeMap::new(),
                pipelines: Vec::new(),
            },
            storage_arg: None,
            node_id: None,
            cache_size: 0,
            poll_interval: Duration::ZERO,
            idle_poll_interval: Duration::ZERO,
            lease_ttl: Duration::ZERO,
            max_block_age: None,
            advertise_addr: None,
            peers: Vec::new(),
            peer_timeout: Duration::ZERO,
            durability_bucket: false,
            dead_node_after: Duration::ZERO,
            peer_ca: None,
            storage: Storage::Local(PathBuf::new()),
        }
    }

    /// The TLS files, when TLS is on.
    pub(crate) fn tls(&self) -> Option<sightline_guard::tls::TlsFiles> {
        Some(sightline_guard::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The head size in force (default: the memory budget's share).
    pub(crate) fn head_max_size(&self) -> usize {
        self.head_max_size
            .unwrap_or_else(|| sightline_model::MemoryBudget::new(self.memory_limit as u64).head_bytes())
    }

    /// Where other nodes reach this node's query API: `--advertise-addr`,
    /// else `--http-addr` unless that is a wildcard (which names no
    /// reachable address).
    pub(crate) fn advertise_addr(&self) -> Option<String> {
        self.advertise_addr
            .clone()
            .or_else(|| (!self.http_addr.ip().is_unspecified()).then(|| self.http_addr.to_string()))
    }

    /// How often the head is cut at the latest: sooner with an object
    /// store, where that is how soon other nodes see a span.
    pub(crate) fn max_block_age(&self) -> Duration {
        self.max_block_age.unwrap_or(match self.storage {
            Storage::Object { .. } => Duration::from_secs(30),
            Storage::Local(_) => Duration::from_secs(120),
        })
    }
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

/// The one-line problem for a bad value of `setting`.
fn invalid(setting: &Setting, value: &str, expected: &str) -> String {
    format!(
        "invalid value {value:?} for {} (env {}, config key {}): expected {expected}",
        setting.flag(),
        setting.env(),
        setting.key()
    )
}

/// Reads a config file: the serve settings as raw text by name, and the
/// pipeline sections as a raw table for the pipeline crate.
fn read_file(path: &std::path::Path) -> Result<(BTreeMap<&'static str, String>, toml::Table), ConfigError> {
    let one = |msg: String| ConfigError(vec![msg]);
    let text = std::fs::read_to_string(path)
        .map_err(|e| one(format!("cannot read --config {}: {e}; check the path", path.display())))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        one(format!("invalid config file {}: {}", path.display(), e.message().replace('\n', " ")))
    })?;
    let mut values = BTreeMap::new();
    let mut pipeline = toml::Table::new();
    let mut problems = Vec::new();
    for (key, value) in table {
        if sightline_pipeline::config::SECTIONS.contains(&key.as_str()) {
            pipeline.insert(key, value);
            continue;
        }
        let Some(setting) = SETTINGS.iter().find(|s| s.in_file && s.key() == key) else {
            let keys: Vec<String> = SETTINGS.iter().filter(|s| s.in_file).map(Setting::key).collect();
            problems.push(format!(
                "invalid config file {}: unknown field `{key}`; valid keys are {}, and the sections {}",
                path.display(),
                keys.join(", "),
                sightline_pipeline::config::SECTIONS.join(", ")
            ));
            continue;
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                problems.push(format!(
                    "invalid config file {}: {key} must be a string, got {}",
                    path.display(),
                    other.type_str()
                ));
                continue;
            }
        };
        values.insert(setting.name, text);
    }
    if problems.is_empty() { Ok((values, pipeline)) } else { Err(ConfigError(problems)) }
}

impl Settings {
    /// Merges defaults, the config file and flags/env, and validates
    /// everything, collecting every problem.
    pub(crate) fn resolve(args: ServeArgs) -> Result<Settings, ConfigError> {
        let (file, pipeline_table) = match args.values.get("config") {
            Some(path) => read_file(std::path::Path::new(path))?,
            None => (BTreeMap::new(), toml::Table::new()),
        };
        let mut settings = Settings::blank();
        let mut errors: Vec<String> = Vec::new();
        for setting in SETTINGS {
            let given = args.values.get(setting.name).or_else(|| file.get(setting.name));
            let value = match (given, setting.default) {
                (Some(v), _) => v.as_str(),
                (None, Default::Value(v)) => v,
                (None, _) => continue,
            };
            if let Err(expected) = (setting.apply)(&mut settings, value) {
                errors.push(invalid(setting, value, expected));
            }
        }
        settings.storage = match settings.storage_arg.take() {
            None => Storage::Local(settings.data_dir.clone()),
            Some(url) if sightline_objstore::is_url(&url) => Storage::Object {
                url,
                node_id: settings.node_id.clone(),
                cache_size: settings.cache_size,
                poll_interval: settings.poll_interval,
            },
            Some(path) => Storage::Local(PathBuf::from(path)),
        };
        let ctx = sightline_pipeline::config::Context {
            data_dir: settings.data_dir.clone(),
            memory_limit: if settings.memory_limit == 0 { 256 << 20 } else { settings.memory_limit as u64 },
            max_tenants: settings.max_tenants,
        };
        let parsed = sightline_pipeline::config::parse(&pipeline_table, &ctx).and_then(|p| {
            match &settings.metrics_remote_write {
                Some(url) => {
                    sightline_pipeline::config::with_remote_write(p, url, &ctx, "--metrics-remote-write")
                }
                None => Ok(p),
            }
        });
        match parsed {
            Ok(p) => settings.pipeline = with_zipkin_addr(p, settings.zipkin_addr),
            Err(problems) => errors.extend(problems.iter().map(|p| format!("config {p}"))),
        }
        let ports = [
            ("--otlp-grpc-addr", settings.otlp_grpc_addr),
            ("--otlp-http-addr", settings.otlp_http_addr),
            ("--http-addr", settings.http_addr),
        ];
        for (i, (a, x)) in ports.iter().enumerate() {
            for (b, y) in &ports[i + 1..] {
                if x.port() != 0 && x == y {
                    errors.push(format!("{a} and {b} are both {x}: give each listener its own port"));
                }
            }
        }
        // Peers address this node by its advertised name: the Host check
        // must let that name through.
        if let Some(addr) = settings.advertise_addr() {
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).to_ascii_lowercase();
            let is_name = host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('[');
            if is_name
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                && !settings.allowed_hosts.names.contains(&host)
            {
                settings.allowed_hosts.names.push(host);
            }
        }
        if !settings.peers.is_empty() && !matches!(settings.storage, Storage::Object { .. }) {
            errors.push(
                "--peers needs --storage s3://… (or gs://, az://): peers' heads complement the blocks they \
                 share through an object store"
                    .to_owned(),
            );
        }
        if settings.durability_bucket && !matches!(settings.storage, Storage::Object { .. }) {
            errors.push(
                "--durability bucket needs --storage s3://… (or gs://, az://): the WAL is copied to the object \
                 store the nodes share"
                    .to_owned(),
            );
        }
        // A node is live while its heartbeat (every quarter of the lease
        // TTL) is at most three of them old; one taken for dead sooner would
        // have its WAL copies replayed while it still serves them.
        let live_window = settings.lease_ttl / 4 * 3;
        if settings.durability_bucket && settings.dead_node_after <= live_window {
            errors.push(format!(
                "--dead-node-after {} must be longer than the heartbeat liveness window of --lease-ttl {} \
                 ({}: three heartbeats, one every quarter of the TTL), or a live node's WAL copies would be \
                 replayed; raise --dead-node-after or lower --lease-ttl",
                shown(settings.dead_node_after),
                shown(settings.lease_ttl),
                shown(live_window),
            ));
        }
        match (&settings.tls_cert, &settings.tls_key, &settings.tls_client_ca) {
            (Some(_), None, _) | (None, Some(_), _) => {
                errors.push("--tls-cert and --tls-key go together: give both or neither".to_owned());
            }
            (None, None, Some(_)) => {
                errors.push(
                    "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first".to_owned(),
                );
            }
            _ => {}
        }
        if settings.peer_ca.is_some() && settings.tls_cert.is_none() {
            errors.push(
                "--peer-ca needs --tls-cert and --tls-key: peers speak TLS only when this node does"
                    .to_owned(),
            );
        }
        if errors.is_empty() { Ok(settings) } else { Err(ConfigError(errors)) }
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

/// `off`/`none`/`0` → `Some(None)`; a valid value → `Some(Some(v))`;
/// invalid → `None`.
pub(crate) fn parse_optional<T>(s: &str, parse: fn(&str) -> Option<T>) -> Option<Option<T>> {
    match s.trim() {
        "off" | "none" | "0" => Some(None),
        v => parse(v).map(Some),
    }
}

/// Parses a duration such as `7d`, `12h`, `90s` or `1h30m`.
/// A duration as an error message shows it: `90s`, `1500ms`.
fn shown(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests;
