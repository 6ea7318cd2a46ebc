//! Signals — traces, logs, metrics — and the consumer of each, so the
//! pipeline builder handles all three with one code path.

use std::sync::Arc;

use sightline_model::TracesConsumer;

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
}

impl Consumer {
    /// The signal this consumer takes.
    pub fn signal(&self) -> Signal {
        match self {
            Consumer::Traces(_) => Signal::Traces,
        }
    }
}
