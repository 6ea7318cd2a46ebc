//! Signals — traces, logs, metrics — and what lets one stage serve all
//! three: [`Consumer`] (the entry of a stage, whatever its signal) and
//! [`Unit`] (what generic stages such as the batch processor and the
//! fan-out need from a signal's batches).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use sightline_model::{
    Batch, ConsumeError, LogBatch, LogRecord, LogsConsumer, Metric, MetricBatch, MetricsConsumer, Span,
    Tenant, TracesConsumer,
};

/// A kind of telemetry a pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// Every signal, in the order docs list them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// The name pipelines are called by, e.g. `traces`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// The signal called `name`.
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The entry of one stage, for whichever signal it carries.
#[derive(Clone)]
pub enum Consumer {
    /// Takes spans.
    Traces(Arc<dyn TracesConsumer>),
    /// Takes log records.
    Logs(Arc<dyn LogsConsumer>),
    /// Takes metrics.
    Metrics(Arc<dyn MetricsConsumer>),
}

impl Consumer {
    /// The signal this consumer takes.
    pub fn signal(&self) -> Signal {
        match self {
            Consumer::Traces(_) => Signal::Traces,
            Consumer::Logs(_) => Signal::Logs,
            Consumer::Metrics(_) => Signal::Metrics,
        }
    }
}

/// A signal's unit of ingest ([`Batch`], [`LogBatch`], [`MetricBatch`]):
/// decoded items plus their OTLP protobuf bytes. Concatenating two units'
/// bytes encodes the merged request (repeated fields append), which is
/// what lets the batch processor merge without re-encoding.
pub trait Unit: Clone + Send + Sync + Sized + 'static {
    /// The decoded item: a span, a log record, a metric.
    type Item: Send + 'static;
    /// The signal's consumer trait object, e.g. `dyn TracesConsumer`.
    type Consumer: ?Sized + Send + Sync + 'static;
    /// Which signal this is.
    const SIGNAL: Signal;

    /// What the batch processor counts: spans, log records, or metric
    /// data points (as the Collector's batch processor does).
    fn count(&self) -> usize;
    /// The items and the bytes.
    fn into_parts(self) -> (Vec<Self::Item>, Bytes);
    /// Pairs items with their bytes (the caller keeps the invariant).
    fn from_parts(items: Vec<Self::Item>, otlp: Bytes) -> Self;
    /// Who the unit belongs to: the batch processor merges only units of
    /// one tenant.
    fn tenant(&self) -> Tenant;
    /// The unit, owned by `tenant` (what a stage that rebuilds a unit from
    /// its parts must call to keep the owner).
    fn with_tenant(self, tenant: Tenant) -> Self;
    /// Hands the unit to `next`.
    fn send(next: &Self::Consumer, unit: Self) -> BoxFuture<'_, Result<(), ConsumeError>>;
    /// Wraps a consumer of this signal.
    fn consumer(next: Arc<Self::Consumer>) -> Consumer;
}

impl Unit for Batch {
    type Item = Span;
    type Consumer = dyn TracesConsumer;
    const SIGNAL: Signal = Signal::Traces;

    fn count(&self) -> usize {
        self.len()
    }
    fn into_parts(self) -> (Vec<Span>, Bytes) {
        Batch::into_parts(self)
    }
    fn from_parts(items: Vec<Span>, otlp: Bytes) -> Self {
        Batch::new(items, otlp)
    }
    fn tenant(&self) -> Tenant {
        Batch::tenant(self).clone()
    }
    fn with_tenant(self, tenant: Tenant) -> Self {
        Batch::with_tenant(self, tenant)
    }
    fn send(next: &Self::Consumer, unit: Self) -> BoxFuture<'_, Result<(), ConsumeError>> {
        next.consume_traces(unit)
    }
    fn consumer(next: Arc<Self::Consumer>) -> Consumer {
        Consumer::Traces(next)
    }
}

impl Unit for LogBatch {
    type Item = LogRecord;
    type Consumer = dyn LogsConsumer;
    const SIGNAL: Signal = Signal::Logs;

    fn count(&self) -> usize {
        self.len()
    }
    fn into_parts(self) -> (Vec<LogRecord>, Bytes) {
        LogBatch::into_parts(self)
    }
    fn from_parts(items: Vec<LogRecord>, otlp: Bytes) -> Self {
        LogBatch::new(items, otlp)
    }
    fn tenant(&self) -> Tenant {
        LogBatch::tenant(self).clone()
    }
    fn with_tenant(self, tenant: Tenant) -> Self {
        LogBatch::with_tenant(self, tenant)
    }
    fn send(next: &Self::Consumer, unit: Self) -> BoxFuture<'_, Result<(), ConsumeError>> {
        next.consume_logs(unit)
    }
    fn consumer(next: Arc<Self::Consumer>) -> Consumer {
        Consumer::Logs(next)
    }
}

impl Unit for MetricBatch {
    type Item = Metric;
    type Consumer = dyn MetricsConsumer;
    const SIGNAL: Signal = Signal::Metrics;

    fn count(&self) -> usize {
        self.data_points()
    }
    fn into_parts(self) -> (Vec<Metric>, Bytes) {
        MetricBatch::into_parts(self)
    }
    fn from_parts(items: Vec<Metric>, otlp: Bytes) -> Self {
        MetricBatch::new(items, otlp)
    }
    fn tenant(&self) -> Tenant {
        MetricBatch::tenant(self).clone()
    }
    fn with_tenant(self, tenant: Tenant) -> Self {
        MetricBatch::with_tenant(self, tenant)
    }
    fn send(next: &Self::Consumer, unit: Self) -> BoxFuture<'_, Result<(), ConsumeError>> {
        next.consume_metrics(unit)
    }
    fn consumer(next: Arc<Self::Consumer>) -> Consumer {
        Consumer::Metrics(next)
    }
}

/// Implements all three consumer traits for a stage generic over the unit
/// (`Stage<U: Unit>` with an inherent `async fn consume(&self, unit: U)`).
macro_rules! consumers_for_units {
    ($stage:ident) => {
        #[async_trait::async_trait]
        impl sightline_model::TracesConsumer for $stage<sightline_model::Batch> {
            async fn consume_traces(
                &self,
                batch: sightline_model::Batch,
            ) -> Result<(), sightline_model::ConsumeError> {
                self.consume(batch).await
            }
        }

        #[async_trait::async_trait]
        impl sightline_model::LogsConsumer for $stage<sightline_model::LogBatch> {
            async fn consume_logs(
                &self,
                batch: sightline_model::LogBatch,
            ) -> Result<(), sightline_model::ConsumeError> {
                self.consume(batch).await
            }
        }

        #[async_trait::async_trait]
        impl sightline_model::MetricsConsumer for $stage<sightline_model::MetricBatch> {
            async fn consume_metrics(
                &self,
                batch: sightline_model::MetricBatch,
            ) -> Result<(), sightline_model::ConsumeError> {
                self.consume(batch).await
            }
        }
    };
}
pub(crate) use consumers_for_units;

#[cfg(test)]
mod tests;
