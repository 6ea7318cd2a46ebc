//! Receiver settings. Receivers themselves live in the binary's crates
//! (`sightline-receive`, `sightline-zipkin`), which own the listeners; the
//! pipeline config only names them, holds their settings and wires their
//! entries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sightline_model::Tenant;

/// Default Zipkin listen address.
pub const DEFAULT_ZIPKIN_ADDR: &str = "127.0.0.1:9411";

/// `otlp`: OTLP/gRPC and OTLP/HTTP on the addresses the serve flags give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpConfig;

/// `zipkin`: Zipkin v2 on `endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipkinConfig {
    /// Listen address.
    pub endpoint: SocketAddr,
}

/// [`DEFAULT_ZIPKIN_ADDR`] as an address.
pub fn default_zipkin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9411))
}

/// `filelog`: tails JSON-lines files (seed 002's sink shape) into logs
/// pipelines. The binary runs it (`sightline_receive::filelog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilelogConfig {
    /// Glob patterns of files to read (`include`, required).
    pub include: Vec<String>,
    /// Glob patterns left out (`exclude`).
    pub exclude: Vec<String>,
    /// `start_at = "beginning"` reads files found at the first start from
    /// their start; `"end"` (the default, as the Collector's) only what
    /// is appended. Files appearing later are always read whole.
    pub start_at_beginning: bool,
    /// `poll_interval`, default 200 ms.
    pub poll_interval: Duration,
    /// `max_log_size`: longer lines are cut (default 1 MiB).
    pub max_log_size: usize,
    /// `[receivers.filelog.fields]`: JSON member names, in the order
    /// timestamp, level, service, message, trace_id, span_id, exception.
    pub fields: [String; 7],
    /// `service_name` of lines without a service member (default
    /// `unknown_service`).
    pub service_name: String,
    /// Where read positions are kept (`<data_dir>/filelog/<id>.json`).
    pub state_path: PathBuf,
    /// `tenant`: whose records these are (default: the default tenant);
    /// a name `X-Scope-OrgID` would accept.
    pub tenant: Tenant,
}

/// The JSON member names a `filelog` receiver reads by default, keyed as
/// in its `fields` table.
pub const FILELOG_FIELDS: [&str; 7] =
    ["timestamp", "level", "service", "message", "trace_id", "span_id", "exception"];
