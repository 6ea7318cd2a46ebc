//! Receiver settings. Receivers themselves live in the binary's crates
//! (`sightline-receive`, `sightline-zipkin`), which own the listeners; the
//! pipeline config only names them, holds their settings and wires their
//! entries.

use std::net::SocketAddr;

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
