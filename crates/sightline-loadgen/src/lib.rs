//! OTLP trace and log load generator and benchmark clients, so Sightline's
//! performance figures come from a command rather than from hand-typed
//! numbers.
//!
//! `sightline loadgen` (this crate's [`Args`]) has three modes:
//!
//! - **send** (the default): OTLP traces (or, with `--signal logs`, log
//!   records) over gRPC or HTTP/protobuf, at
//!   maximum speed or a fixed rate, with a concurrency, spans per request,
//!   a run length or span count and a seed. Two attribute profiles
//!   ([`Profile::Testbed`], the OpenTelemetry Collector testbed's ~150 B
//!   span; [`Profile::Realistic`], ~400 B microservice spans) and a trace
//!   shape (spans per trace, depth, fan-out). It counts acknowledged,
//!   rejected and retried spans, honours `Retry-After` and gRPC `RetryInfo`,
//!   and prints spans/s and MB/s ([`run`] returns the [`Report`]).
//! - **decode-bench**: prost-decodes the same request bodies in a loop on
//!   one core, the physical limit any OTLP receiver is measured against;
//!   also the cost of Sightline's OTLP → model mapping on top.
//! - **query-bench**: trace-by-id and search latency through the Jaeger
//!   HTTP API, over traces a send run recorded (`--samples-out`).
//!
//! # Why templates
//!
//! On a small machine the load generator shares the cores with the server
//! it measures. So by default it builds a pool of encoded requests once and
//! turns each copy into new traces by patching ids and times in place
//! (see `template.rs`): a `memcpy` and a few writes per span. `--pool 0`
//! generates every request afresh instead, for storage measurements where
//! repeated attribute values would flatter compression.
//!
//! # Example
//!
//! ```text
//! sightline loadgen --protocol grpc --endpoint 127.0.0.1:4317 --profile testbed --duration 20s --concurrency 8
//! sightline loadgen --protocol http --endpoint 127.0.0.1:4318 --rate 10000 --duration 30s
//! sightline loadgen --signal logs --endpoint 127.0.0.1:4317 --duration 20s
//! sightline loadgen decode-bench --profile realistic
//! sightline loadgen query-bench --samples samples.json --http-addr 127.0.0.1:16686
//! ```
#![deny(missing_docs)]

mod client;
mod decode;
mod generate;
mod logs;
mod logs_wire;
mod query;
mod send;
mod template;

use std::path::PathBuf;

pub use client::{Protocol, Signal};
pub use decode::{DecodeArgs, DecodeReport, decode_bench};
pub use generate::{
    Generator, Profile, ROOT_SERVICE, SEARCH_MIN_DURATION, SEARCH_OPERATION, SEARCH_SERVICE, Shape,
    TraceSample, USER_KEY,
};
pub use query::{QueryArgs, QueryReport, query_bench};
pub use send::Report;
pub use template::{Patch, Template, TemplateError};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not a valid `host:port`.
    #[error("invalid endpoint {0}")]
    Endpoint(String),
    /// Could not connect.
    #[error("cannot connect to {0}")]
    Connect(String),
    /// Building requests failed.
    #[error("generating requests: {0}")]
    Generate(String),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A query failed or returned something unexpected.
    #[error("query {what}: {detail}")]
    Query {
        /// Which query.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The samples file is not what `--samples-out` writes.
    #[error("samples file {path}: {detail}")]
    Samples {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// `sightline loadgen`: send OTLP load (default), or run the decode or query
/// benchmark.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Mode>,
    #[command(flatten)]
    send: SendArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
#[allow(clippy::enum_variant_names)] // NOTE: subcommand names, `*-bench` each.
enum Mode {
    /// Decode the generated request bodies with prost in a loop on one core:
    /// the physical limit of any OTLP receiver.
    DecodeBench(DecodeArgs),
    /// Trace-by-id and search latency through the Jaeger HTTP API, over
    /// traces a send run recorded with --samples-out.
    QueryBench(QueryArgs),
    /// The log store's bytes per record and query latency (trace lookups,
    /// body search), in-process over generated records.
    LogsBench(logs::LogsArgs),
}

/// What to generate: profile, shape, request size and seed (shared by send
/// and decode-bench).
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Attribute profile.
    #[arg(long, value_enum, default_value = "testbed")]
    pub profile: Profile,
    /// Spans per export request.
    #[arg(long, default_value_t = 512)]
    pub spans_per_request: usize,
    /// Spans per trace [default: 1 for testbed, 12 for realistic].
    #[arg(long)]
    pub spans_per_trace: Option<usize>,
    /// Trace depth below the root [default: 0 for testbed, 3 for realistic].
    #[arg(long)]
    pub depth: Option<usize>,
    /// Children per span [default: 0 for testbed, 3 for realistic].
    #[arg(long)]
    pub fanout: Option<usize>,
    /// Seed: the same seed sends the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Distinct encoded requests to build up front and patch into new traces
    /// per send; 0 generates every request afresh (slower, no repeated
    /// attribute values).
    #[arg(long, default_value_t = 32)]
    pub pool: usize,
}

impl DataArgs {
    /// The trace shape: the profile's default with the flags applied.
    pub fn shape(&self) -> Shape {
        let d = Shape::default_for(self.profile);
        let spans_per_trace = self.spans_per_trace.unwrap_or(d.spans_per_trace).max(1);
        // Asking for more spans per trace than the default shape holds
        // implies a wider tree unless depth or fan-out were given.
        let (depth, fanout) = match (self.depth, self.fanout) {
            (None, None) if spans_per_trace > 1 && d.fanout == 0 => (1, spans_per_trace - 1),
            (depth, fanout) => (depth.unwrap_or(d.depth.max(1)), fanout.unwrap_or(d.fanout.max(1))),
        };
        Shape { spans_per_trace, depth, fanout }
    }
}

/// Options of the send mode.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// What to send: spans, or log records (the records `logs-bench`
    /// generates; --spans-per-request and --spans then count records).
    #[arg(long, value_enum, default_value = "traces")]
    pub signal: Signal,
    /// Transport.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Server address, host:port [default: 127.0.0.1:4317 for grpc, 127.0.0.1:4318 for http].
    #[arg(long, default_value = "")]
    pub endpoint: String,
    /// Concurrent senders (one connection each for gRPC).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Target spans per second; absent means as fast as the server answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Run length, e.g. 30s [default: 10s unless --spans is given].
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
    /// Spans to send in total (rounded up to whole requests).
    #[arg(long)]
    pub spans: Option<u64>,
    /// Leading time excluded from the spans/s figure.
    #[arg(long)]
    pub warmup: Option<humantime::Duration>,
    /// Give up on a request refused retryably for this long.
    #[arg(long, default_value = "60s")]
    pub retry_timeout: humantime::Duration,
    /// Print the report as one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
    /// Write the first trace of every acknowledged request (id, user), for
    /// query-bench, to this file.
    #[arg(long, value_name = "FILE")]
    pub samples_out: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

impl SendArgs {
    fn shape(&self) -> Shape {
        self.data.shape()
    }
}

impl std::ops::Deref for SendArgs {
    type Target = DataArgs;
    fn deref(&self) -> &DataArgs {
        &self.data
    }
}

/// Runs the send mode and returns its report.
pub async fn run(args: &SendArgs) -> Result<Report, Error> {
    Ok(send::run_with_samples(&resolved(args), false).await?.report)
}

fn resolved(args: &SendArgs) -> SendArgs {
    let mut args = args.clone();
    if args.endpoint.is_empty() {
        args.endpoint = match args.protocol {
            Protocol::Grpc => "127.0.0.1:4317",
            Protocol::Http => "127.0.0.1:4318",
        }
        .to_owned();
    }
    args
}

/// Runs `sightline loadgen` and prints the result on stdout.
pub async fn main(args: Args) -> Result<(), Error> {
    match args.command {
        Some(Mode::DecodeBench(d)) => {
            let json = d.json;
            let report = tokio::task::spawn_blocking(move || decode_bench(&d))
                .await
                .map_err(|e| Error::Generate(e.to_string()))??;
            println!("{}", if json { report.to_json().to_string() } else { report.to_string() });
        }
        Some(Mode::QueryBench(q)) => {
            let report = query_bench(&q).await?;
            println!("{}", if q.json { report.to_json().to_string() } else { report.to_string() });
        }
        Some(Mode::LogsBench(l)) => {
            let report = logs::logs_bench(&l).await?;
            println!("{}", if l.json { report.to_json().to_string() } else { report.to_string() });
        }
        None => {
            let args = resolved(&args.send);
            if args.signal == Signal::Logs && args.samples_out.is_some() {
                return Err(Error::Generate(
                    "--samples-out records traces for query-bench: not with --signal logs".into(),
                ));
            }
            let outcome = send::run_with_samples(&args, args.samples_out.is_some()).await?;
            if let Some(path) = &args.samples_out {
                query::write_samples(path, &args, &outcome)?;
            }
            let report = outcome.report;
            println!("{}", if args.json { report.to_json().to_string() } else { report.to_string() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
