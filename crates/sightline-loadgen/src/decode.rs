//! The bare decode loop: prost-decoding the request bodies a send run would
//! send, on one core, as the reference every receiver's rate is compared
//! against. A second loop adds Sightline's OTLP → model mapping, which
//! shows what the mapping itself costs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::send::Source;
use crate::{DataArgs, Error};

/// Options of `loadgen decode-bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecodeArgs {
    /// How long each loop runs.
    #[arg(long, default_value = "5s")]
    pub duration: humantime::Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Decode rates, per core.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeReport {
    /// Spans per second prost decodes into `ExportTraceServiceRequest`.
    pub prost_spans_per_sec: f64,
    /// Megabytes (10^6 B) of request bodies per second, prost only.
    pub prost_mb_per_sec: f64,
    /// Spans per second for prost decoding plus
    /// `sightline_model::otlp::decode_request`.
    pub model_spans_per_sec: f64,
    /// Mean encoded request bytes per span.
    pub bytes_per_span: f64,
}

impl DecodeReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "prost_spans_per_sec": self.prost_spans_per_sec,
            "prost_mb_per_sec": self.prost_mb_per_sec,
            "model_spans_per_sec": self.model_spans_per_sec,
            "bytes_per_span": self.bytes_per_span,
        })
    }
}

impl std::fmt::Display for DecodeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prost decode: {:.0} spans/s ({:.1} MB/s) on one core; with the model mapping: {:.0} spans/s; {:.0} B/span",
            self.prost_spans_per_sec, self.prost_mb_per_sec, self.model_spans_per_sec, self.bytes_per_span
        )
    }
}

/// Runs both loops for `args.duration` each, on the calling thread.
pub fn decode_bench(args: &DecodeArgs) -> Result<DecodeReport, Error> {
    let data = &args.data;
    let pool = data.pool.max(1);
    let source = Source::new(data.profile, data.shape(), data.seed, data.spans_per_request.max(1), pool)?;
    // The same bodies a send run starts with, patched like request k.
    let bodies: Vec<(bytes::Bytes, usize)> =
        (0..pool as u64).map(|k| source.build(k).map(|b| (b.body, b.spans))).collect::<Result<_, _>>()?;
    let total_bytes: usize = bodies.iter().map(|(b, _)| b.len()).sum();
    let total_spans: usize = bodies.iter().map(|(_, n)| n).sum();
    let budget: Duration = args.duration.into();

    let (spans, bytes, secs) = run_loop(&bodies, budget, |body| {
        ExportTraceServiceRequest::decode(body.clone()).map(black_box).is_ok()
    })?;
    let prost_spans_per_sec = spans as f64 / secs;
    let prost_mb_per_sec = bytes as f64 / secs / 1e6;
    let (spans, _, secs) = run_loop(&bodies, budget, |body| {
        ExportTraceServiceRequest::decode(body.clone())
            .map(|r| black_box(sightline_model::otlp::decode_request(r)))
            .is_ok()
    })?;
    Ok(DecodeReport {
        prost_spans_per_sec,
        prost_mb_per_sec,
        model_spans_per_sec: spans as f64 / secs,
        bytes_per_span: total_bytes as f64 / total_spans.max(1) as f64,
    })
}

fn run_loop(
    bodies: &[(bytes::Bytes, usize)],
    budget: Duration,
    mut decode: impl FnMut(&bytes::Bytes) -> bool,
) -> Result<(u64, u64, f64), Error> {
    let started = Instant::now();
    let (mut spans, mut bytes) = (0u64, 0u64);
    loop {
        for (body, n) in bodies {
            if !decode(body) {
                return Err(Error::Generate("a generated request does not decode".to_owned()));
            }
            spans += *n as u64;
            bytes += body.len() as u64;
        }
        if started.elapsed() >= budget {
            return Ok((spans, bytes, started.elapsed().as_secs_f64()));
        }
    }
}
