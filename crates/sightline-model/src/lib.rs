//! The span model every Sightline stage speaks (and the log and metric
//! models beside it), their mapping to and from OTLP, and the contracts
//! between stages.
//!
//! Receivers turn OTLP requests into a [`Batch`] with [`otlp::decode_request`];
//! a [`TracesConsumer`] (the pipeline, then a store) takes the batch and
//! acknowledges it only once it is durable; a [`SpanReader`] answers queries.
//! Both traits are implemented by the embedded store today and are the seam
//! where another backend (ClickHouse) plugs in without touching receivers or
//! query code.
//!
//! This crate does no IO. OTLP is Sightline's native data model, so the
//! OTLP mapping lives here, next to the types it maps; it is the one place
//! that knows how a wire span becomes a [`Span`].
#![deny(missing_docs)]

mod batch;
mod contract;
mod ids;
mod log;
mod logquery;
pub mod memory;
mod metric;
pub mod otlp;
mod peer;
mod query;
mod span;
mod tags;
mod tailframe;
mod tenant;
mod testspan;
mod value;

pub use batch::Batch;
pub use contract::{
    ComponentHealth, ConsumeError, DependencyLink, EmptyReader, LogsConsumer, MetricPoint, MetricSeries,
    MetricsConsumer, MetricsQuery, Operation, QueryError, ServiceGraphReader, SpanMetricsReader, SpanReader,
    TAG_SAMPLE_TRACES, TenantReaders, TraceHit, TraceStore, TracesConsumer,
};
pub use ids::{IdError, SpanId, TraceId};
pub use log::{LogBatch, LogRecord};
pub use logquery::{
    BodyMatcher, EmptyLogReader, GRAM_CHARS, LogCursor, LogPage, LogQuery, LogReader, LogTenantReaders,
    MIN_WORD_CHARS, PeerTailEvent, body_words, grams_of_substring, word_grams, words_of_substring,
};
pub use memory::{MemoryBudget, Pressure};
pub use metric::{
    Exemplar, ExponentialBuckets, ExponentialHistogramPoint, HistogramPoint, Metric, MetricBatch, MetricData,
    NO_RECORDED_VALUE, Number, NumberPoint, SummaryPoint, Temporality,
};
pub use peer::{is_database_call, virtual_node_name};
pub use query::{TagFilter, TraceQuery, span_matches, tag_lookup};
pub use span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode, UNKNOWN_SERVICE};
pub use tags::{
    AttributeScope, DEFAULT_TAG_LIMIT, TagNames, TagQuery, collect_tag_names, collect_tag_values,
    merge_tag_values,
};
pub use tailframe::{MAX_FRAME_BYTES, TAIL_KEEPALIVE, TailFrame, TailFrameError, TailFrameReader};
pub use tenant::{Tenant, TenantError};
pub use value::{CompactString, KeyValue, Value};

#[cfg(test)]
mod tests;
