//! The one error type of this crate.

/// What can go wrong while setting telemetry up. Instrumented calls never
/// fail because of telemetry: their own errors pass through unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable or option has a value we cannot use.
    #[error("invalid {name}={value:?}: {reason}")]
    Config {
        /// The variable or option name.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("building the OTLP {signal} exporter for {endpoint}: {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The endpoint it was built for.
        endpoint: String,
        /// The SDK's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A TLS file (CA, client certificate or key) cannot be used, or the
    /// exporter's HTTP client cannot be set up.
    #[error("OTLP export{}: {reason}", in_file(path))]
    Tls {
        /// The file (empty when the problem is not a file's).
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A global `tracing` subscriber was already installed.
    #[error("a global tracing subscriber is already set (use Options::install_subscriber(false))")]
    SubscriberAlreadySet,
}

/// ` (file …)` for a file's problem, nothing otherwise.
fn in_file(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() { String::new() } else { format!(" (file {})", path.display()) }
}

impl Error {
    pub(crate) fn config(name: &'static str, value: &str, reason: impl Into<String>) -> Error {
        Error::Config { name, value: value.to_owned(), reason: reason.into() }
    }
}
