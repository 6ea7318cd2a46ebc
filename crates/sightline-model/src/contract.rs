use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::tags::{AttributeScope, TagNames, TagQuery, collect_tag_names, collect_tag_values};
use crate::{Batch, LogBatch, MetricBatch, Span, SpanKind, Tenant, TraceId, TraceQuery, Value, span_matches};

/// Traces the default tag listings of [`SpanReader`] sample: the most
/// recent ones in the window. A reader with attribute dictionaries should
/// override both methods and list everything.
pub const TAG_SAMPLE_TRACES: usize = 200;

/// Why a consumer did not take a batch. Receivers map each kind onto the
/// protocol's own signal (HTTP status + `Retry-After`, gRPC code +
/// `RetryInfo`), so a sender knows whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// Temporarily over a limit (memory budget, queue depth): retry later.
    #[error("overloaded: {reason}")]
    Overloaded {
        /// What limit was hit.
        reason: String,
        /// When the sender should retry.
        retry_after: Duration,
    },
    /// The consumer cannot take data now (failed store, shutting down).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
        /// When the sender should retry.
        retry_after: Duration,
    },
}

impl ConsumeError {
    /// How long the sender should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        match self {
            ConsumeError::Overloaded { retry_after, .. } | ConsumeError::Unavailable { retry_after, .. } => {
                *retry_after
            }
        }
    }
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query itself is wrong (maps to HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The backend cannot answer now (maps to HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An internal failure, e.g. a corrupt block (maps to HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// One trace a search found, as [`SpanReader::find_trace_ids`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceHit {
    /// The trace.
    pub trace_id: TraceId,
    /// Start of its latest span matching the search, ns since the Unix
    /// epoch: searches rank by it, newest first.
    pub latest_start_unix_nanos: u64,
}

impl TraceHit {
    /// The hit of a trace's spans for `query`: its latest matching span's
    /// start, or its latest span's when none matches exactly (a backend may
    /// match more loosely than [`span_matches`], never more strictly).
    /// `None` for no spans.
    pub fn of(spans: &[Span], query: &TraceQuery) -> Option<TraceHit> {
        let first = spans.first()?;
        let latest = |matching: bool| {
            spans.iter().filter(|s| !matching || span_matches(s, query)).map(|s| s.start_time_unix_nano).max()
        };
        let latest_start_unix_nanos = latest(true).or_else(|| latest(false)).unwrap_or(0);
        Some(TraceHit { trace_id: first.trace_id, latest_start_unix_nanos })
    }

    /// Hits by trace (latest matching start) as a search answers them:
    /// newest first, ties by trace id, at most `limit`.
    pub fn ranked(hits: impl IntoIterator<Item = (TraceId, u64)>, limit: usize) -> Vec<TraceHit> {
        let mut ranked: Vec<TraceHit> = hits
            .into_iter()
            .map(|(trace_id, latest_start_unix_nanos)| TraceHit { trace_id, latest_start_unix_nanos })
            .collect();
        ranked.sort_by(|a, b| {
            b.latest_start_unix_nanos.cmp(&a.latest_start_unix_nanos).then(a.trace_id.cmp(&b.trace_id))
        });
        ranked.truncate(limit);
        ranked
    }
}

/// A span name with its kind, as `/api/operations` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
}

/// Calls from one service to another, as `/api/dependencies` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DependencyLink {
    /// Calling service (the parent span's).
    pub parent: String,
    /// Called service (the child span's).
    pub child: String,
    /// Number of parent → child span pairs.
    pub call_count: u64,
}

/// Health of one component, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentHealth {
    /// Component name, e.g. `store`.
    pub name: String,
    /// Whether it works.
    pub healthy: bool,
    /// A human-readable detail (why it failed, or a short status).
    pub detail: String,
}

/// Takes batches of spans. The lifecycle contract: `consume_traces` returns
/// `Ok` only once the batch is as durable as the consumer promises (for the
/// embedded store: in the write-ahead log, synced per the fsync policy);
/// anything else is an error the sender may retry. `shutdown` stops
/// accepting, flushes, and is safe to call twice.
#[async_trait]
pub trait TracesConsumer: Send + Sync {
    /// Consumes one batch.
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError>;
}

/// Takes batches of log records, under the same contract as
/// [`TracesConsumer`]: `Ok` only once the batch is as durable as the
/// consumer promises; anything else is an error the sender may retry.
#[async_trait]
pub trait LogsConsumer: Send + Sync {
    /// Consumes one batch.
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError>;
}

/// Takes batches of metrics, under the same contract as
/// [`TracesConsumer`].
#[async_trait]
pub trait MetricsConsumer: Send + Sync {
    /// Consumes one batch.
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError>;
}

/// Answers trace queries. Implementations read consistent snapshots and
/// never hold a lock ingest waits on while reading blocks.
#[async_trait]
pub trait SpanReader: Send + Sync {
    /// All spans of one trace, `None` when no span of it is stored.
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError>;

    /// Several traces at once (`/api/traces?traceID=a&traceID=b`): the
    /// found ones, in the order of `ids` (duplicates once), each as
    /// [`SpanReader::trace`] would return it. Backends override the default
    /// (one lookup per id) to read each block once for all ids.
    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, QueryError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(*id)
                && let Some(spans) = self.trace(*id).await?
            {
                out.push(spans);
            }
        }
        Ok(out)
    }

    /// Full traces having at least one span that matches the whole query
    /// (see [`crate::span_matches`]), most recent match first, at most
    /// `query.limit` of them (clamped to [`TraceQuery::MAX_LIMIT`]; a
    /// backend may return fewer when the results would exceed its memory
    /// budget for one query).
    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError>;

    /// The traces [`SpanReader::find_traces`] would return, in its order,
    /// without their spans: each id with the start of its latest matching
    /// span. A search that checks candidates itself (TraceQL) asks for ids
    /// round by round and reads, with [`SpanReader::traces`], only the
    /// traces it has not seen, instead of every earlier round's traces
    /// again (Tempo's fetch layer works the same way).
    ///
    /// The default reads the full traces and drops their spans; backends
    /// override it to read only what the search conditions need.
    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        let found = self.find_traces(query).await?;
        Ok(found.iter().filter_map(|spans| TraceHit::of(spans, query)).collect())
    }

    /// Names of all services with stored spans, sorted.
    async fn services(&self) -> Result<Vec<String>, QueryError>;

    /// Operations of a service, sorted, optionally only of one kind.
    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError>;

    /// Service-to-service call counts from parent/child spans whose start
    /// lies in `[end - lookback, end]` (ns since the Unix epoch).
    async fn dependencies(
        &self,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError>;

    /// Attribute names of spans starting in the query's window, per scope
    /// (only `scope` when given), as [`collect_tag_names`] defines them.
    ///
    /// The default looks at the [`TAG_SAMPLE_TRACES`] most recent traces
    /// with a span in the window, so rare names may be missing; readers
    /// with dictionaries should list every name.
    async fn tag_names(
        &self,
        scope: Option<AttributeScope>,
        query: &TagQuery,
    ) -> Result<TagNames, QueryError> {
        let sample = self.find_traces(&tag_sample(query)).await?;
        Ok(collect_tag_names(sample.iter().flatten(), scope, query))
    }

    /// Distinct values of attribute `key` (in `scope`, or span and resource
    /// attributes when `None`) of spans starting in the window, as
    /// [`collect_tag_values`] defines them. The default samples like
    /// [`SpanReader::tag_names`].
    async fn tag_values(
        &self,
        scope: Option<AttributeScope>,
        key: &str,
        query: &TagQuery,
    ) -> Result<Vec<Value>, QueryError> {
        let sample = self.find_traces(&tag_sample(query)).await?;
        Ok(collect_tag_values(sample.iter().flatten(), scope, key, query))
    }

    /// What the answers so far left out, one line each (e.g. "peer n1 at
    /// 10.0.0.1:16686 did not answer: timed out"): a reader that gathers
    /// data from other nodes returns what it has instead of failing, and
    /// the API shows these beside the partial result. A reader is asked
    /// for once per request ([`TenantReaders::reader_for`]), so these
    /// belong to that request. Local readers leave nothing out.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The search the default tag listings sample with.
fn tag_sample(query: &TagQuery) -> TraceQuery {
    TraceQuery {
        start_min_unix_nanos: query.start_min_unix_nanos,
        start_max_unix_nanos: query.start_max_unix_nanos,
        limit: TAG_SAMPLE_TRACES,
        ..TraceQuery::default()
    }
}

/// Finds each tenant's data: the query side of a backend that keeps
/// tenants apart. The query API asks it for the reader of the request's
/// tenant, so no answer can mix tenants.
#[async_trait]
pub trait TenantReaders: Send + Sync {
    /// The reader of `tenant`'s data. A tenant without data gets a reader
    /// that finds nothing (see [`EmptyReader`]), not an error.
    async fn reader(&self, tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError>;

    /// The reader for one request of `tenant` whose caller presented
    /// `credentials` (its `Authorization` header, when it sent one): a
    /// reader that asks other nodes passes them on, so a peer grants
    /// exactly what this node granted. The default ignores them.
    async fn reader_for(
        &self,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Arc<dyn SpanReader>, QueryError> {
        let _ = credentials;
        self.reader(tenant).await
    }
}

/// One reader answers for every tenant: a backend without tenants (tests,
/// tools).
#[async_trait]
impl TenantReaders for Arc<dyn SpanReader> {
    async fn reader(&self, _tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError> {
        Ok(Arc::clone(self))
    }
}

/// The reader of a tenant that has no data: every answer is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyReader;

#[async_trait]
impl SpanReader for EmptyReader {
    async fn trace(&self, _id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        Ok(None)
    }

    async fn find_traces(&self, _query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        Ok(Vec::new())
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }

    async fn operations(
        &self,
        _service: &str,
        _kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, QueryError> {
        Ok(Vec::new())
    }

    async fn dependencies(&self, _end: u64, _lookback: u64) -> Result<Vec<DependencyLink>, QueryError> {
        Ok(Vec::new())
    }
}

/// Which span metrics to read: the parameters of Jaeger's metrics API
/// (`BaseQueryParameters` in Jaeger's `metricstore`), with times in
/// milliseconds as that API takes them, and the tenant whose spans count.
///
/// Points are evaluated at `end - lookback`, then every `step` up to `end`
/// (as a Prometheus range query does); each point summarises the spans of
/// the `rate_per` window ending at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Whose spans: only this tenant's series are read.
    pub tenant: Tenant,
    /// Services to report (`service=`, repeatable); exact names.
    pub services: Vec<String>,
    /// Span kinds to include (`spanKind=`, repeatable); Jaeger's default is
    /// `[Server]`.
    pub span_kinds: Vec<SpanKind>,
    /// One series per (service, operation) instead of per service.
    pub group_by_operation: bool,
    /// End of the range, ms since the Unix epoch (`endTs`).
    pub end_unix_millis: i64,
    /// Length of the range, ms (`lookback`).
    pub lookback_millis: i64,
    /// Distance between points, ms (`step`).
    pub step_millis: i64,
    /// Window each point aggregates, ms (`ratePer`).
    pub rate_per_millis: i64,
}

/// One point of a metric series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    /// When, ms since the Unix epoch.
    pub timestamp_unix_millis: i64,
    /// The value; always finite.
    pub value: f64,
}

/// One series: its labels (`service_name`, and `operation` when grouped by
/// operation, in that order) and its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// `(name, value)` pairs.
    pub labels: Vec<(String, String)>,
    /// Points, oldest first.
    pub points: Vec<MetricPoint>,
}

/// Answers Jaeger's service performance monitoring queries (the Monitor
/// tab) from metrics derived from spans. Every method returns one series per
/// group, sorted by labels; a group with no data in the range is absent.
#[async_trait]
pub trait SpanMetricsReader: Send + Sync {
    /// Calls per second over each point's `rate_per` window.
    async fn call_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError>;

    /// Errors as a fraction of calls (0–1) over each point's window.
    async fn error_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError>;

    /// The `quantile` (0–1) of span durations, in milliseconds, over each
    /// point's window.
    async fn latencies(&self, query: &MetricsQuery, quantile: f64) -> Result<Vec<MetricSeries>, QueryError>;

    /// The smallest step that gives distinct points (the reader's
    /// resolution).
    fn min_step(&self) -> Duration;
}

/// Answers `/api/dependencies` from service-graph edges (client/server and
/// producer/consumer span pairs) rather than from stored spans.
#[async_trait]
pub trait ServiceGraphReader: Send + Sync {
    /// Requests per (client, server) edge of `tenant`'s spans completed in
    /// `[end - lookback, end]` (ns since the Unix epoch), sorted.
    async fn dependencies(
        &self,
        tenant: &Tenant,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError>;
}

/// A complete trace backend: takes spans, answers queries, reports health.
#[async_trait]
pub trait TraceStore: TracesConsumer + SpanReader {
    /// Current health.
    fn health(&self) -> ComponentHealth;

    /// Stops accepting, flushes what is buffered, releases files. Safe to
    /// call more than once.
    async fn shutdown(&self);
}
