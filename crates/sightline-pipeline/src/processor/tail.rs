//! Tail sampling: decide per trace after seeing (most of) it.
//!
//! Spans are grouped by trace and held for `decision_wait` after the
//! trace's first span arrived; then the policies decide. A trace is kept
//! when any top-level policy says so (the Collector's OR semantics); `and`
//! policies need all their children. Late spans of a decided trace follow
//! the decision (remembered for a while).
//!
//! **Durability trade-off.** Senders are acknowledged when spans enter the
//! sampler's buffer, not when they reach the store — waiting for a decision
//! would outlast every exporter's timeout. Spans awaiting a decision are
//! in memory only and are lost on a crash, exactly as with the Collector's
//! tail sampler. Without tail sampling (the default) the WAL promise holds
//! end to end.
//!
//! **Bounded memory.** At most `num_traces` traces wait; when full, the
//! oldest is decided early rather than dropped. Kept spans that the next
//! stage refuses wait in an outbox; while the outbox is over its bound, new
//! spans are refused (retryable), so pressure flows back to senders.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use regex::Regex;
use sightline_model::{Batch, ConsumeError, Span, StatusCode, Tenant, TraceId, TracesConsumer, Value};
use tokio::task::JoinHandle;

use super::Next;
use crate::Component;
use crate::metrics::{Metrics, labels};

/// One sampling policy.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Keep everything.
    AlwaysSample,
    /// Keep traces with a span whose status is one of these.
    StatusCode(Vec<StatusCode>),
    /// Keep traces lasting at least `threshold` (first start to last end),
    /// and at most `upper` when set.
    Latency {
        /// Lower bound, inclusive.
        threshold: Duration,
        /// Upper bound, inclusive.
        upper: Option<Duration>,
    },
    /// Keep traces with a span (or resource) attribute whose text equals
    /// one of `values`, or matches one of them as a regex.
    StringAttribute {
        /// Attribute key.
        key: String,
        /// Accepted values (regexes when `regex` is set).
        values: Vec<String>,
        /// Compiled `values` when matching by regex.
        regex: Option<Vec<Regex>>,
        /// Keep traces that do NOT match instead.
        invert: bool,
    },
    /// Keep traces with a numeric attribute in `[min, max]`.
    NumericAttribute {
        /// Attribute key.
        key: String,
        /// Lower bound, inclusive.
        min: f64,
        /// Upper bound, inclusive.
        max: f64,
    },
    /// Keep traces with a boolean attribute equal to `value`.
    BooleanAttribute {
        /// Attribute key.
        key: String,
        /// Expected value.
        value: bool,
    },
    /// Keep this share of traces, by trace id (consistent across nodes).
    Probabilistic {
        /// Percent kept.
        percentage: f64,
    },
    /// Keep traces while the kept spans per second stay under the budget.
    RateLimiting {
        /// Span budget per second.
        spans_per_second: u64,
    },
    /// Keep when every child policy keeps.
    And(Vec<Policy>),
    /// Keep traces slower than the p99 of their root operation (learned
    /// from traffic; needs 100 samples of an operation before it judges).
    SlowerThanP99,
}

/// Settings of the tail sampler.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long after a trace's first span to decide.
    pub decision_wait: Duration,
    /// Traces held at most.
    pub num_traces: usize,
    /// Named policies; a trace is kept when any keeps it.
    pub policies: Vec<(String, Policy)>,
    /// Spans waiting for the next stage beyond which new data is refused.
    pub max_outbox_spans: usize,
}

impl Config {
    /// The default policy set: keep every error trace and every trace
    /// slower than its operation's p99, sample the rest to a span budget.
    pub fn default_policies(spans_per_second: u64) -> Vec<(String, Policy)> {
        vec![
            ("errors".into(), Policy::StatusCode(vec![StatusCode::Error])),
            ("slow".into(), Policy::SlowerThanP99),
            ("budget".into(), Policy::RateLimiting { spans_per_second }),
        ]
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            decision_wait: Duration::from_secs(10),
            num_traces: 50_000,
            policies: Config::default_policies(1000),
            max_outbox_spans: 100_000,
        }
    }
}

/// Log-scale latency histogram per root operation, for p99.
#[derive(Default)]
struct Latencies {
    by_operation: HashMap<(String, String), [u32; 64]>,
}

/// Bucket i holds durations in [2^(i/2) µs, 2^((i+1)/2) µs): √2 resolution.
fn bucket(nanos: u64) -> usize {
    let micros = (nanos / 1000).max(1) as f64;
    ((micros.log2() * 2.0) as usize).min(63)
}

impl Latencies {
    fn record(&mut self, key: (String, String), nanos: u64) {
        let buckets = self.by_operation.entry(key).or_insert([0; 64]);
        buckets[bucket(nanos)] = buckets[bucket(nanos)].saturating_add(1);
    }

    /// Whether `nanos` is above the operation's p99 (false until 100 samples).
    fn above_p99(&self, key: &(String, String), nanos: u64) -> bool {
        let Some(buckets) = self.by_operation.get(key) else { return false };
        let total: u64 = buckets.iter().map(|c| u64::from(*c)).sum();
        if total < 100 {
            return false;
        }
        let rank = total - total / 100;
        let mut seen = 0u64;
        let mut p99_bucket = 63;
        for (i, c) in buckets.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                p99_bucket = i;
                break;
            }
        }
        bucket(nanos) > p99_bucket
    }
}

struct Pending {
    spans: Vec<Span>,
}

/// A trace of one tenant: traces of different tenants with the same id
/// are decided, and sent on, apart.
type Key = (Tenant, TraceId);

struct State {
    pending: HashMap<Key, Pending>,
    order: VecDeque<(Instant, Key)>,
    /// Recent decisions, for late spans: (kept, ids in decision order).
    decided: HashMap<Key, bool>,
    decided_order: VecDeque<Key>,
    /// Kept spans waiting to be sent, per tenant.
    outbox: BTreeMap<Tenant, Vec<Span>>,
    latencies: Latencies,
    rate_window: (Instant, u64),
}

/// The processor.
pub struct TailSampler {
    id: String,
    config: Config,
    state: Arc<Mutex<State>>,
    next: Next,
    metrics: Arc<Metrics>,
    task: Mutex<Option<JoinHandle<()>>>,
}

const DECIDED_MEMORY: usize = 100_000;

impl TailSampler {
    /// Starts the deciding task; must run inside a tokio runtime.
    pub fn new(id: &str, config: Config, next: Next, metrics: Arc<Metrics>) -> Arc<TailSampler> {
        let state = Arc::new(Mutex::new(State {
            pending: HashMap::new(),
            order: VecDeque::new(),
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            outbox: BTreeMap::new(),
            latencies: Latencies::default(),
            rate_window: (Instant::now(), 0),
        }));
        let sampler =
            Arc::new(TailSampler { id: id.to_owned(), config, state, next, metrics, task: Mutex::new(None) });
        let weak = Arc::downgrade(&sampler);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(s) = weak.upgrade() else { return };
                s.tick(Instant::now()).await;
            }
        });
        *sampler.task.lock() = Some(task);
        sampler
    }

    /// Decides every trace due at `now` and sends what is kept.
    async fn tick(&self, now: Instant) {
        {
            let mut st = self.state.lock();
            while let Some((seen, _)) = st.order.front() {
                if now.duration_since(*seen) < self.config.decision_wait {
                    break;
                }
                if let Some((_, id)) = st.order.pop_front() {
                    self.decide(&mut st, id, now);
                }
            }
            self.metrics.tail_pending_traces.set(st.pending.len() as i64);
        }
        self.send_outbox().await;
    }

    fn decide(&self, st: &mut State, id: Key, now: Instant) {
        let Some(trace) = st.pending.remove(&id) else { return };
        let keep = self.evaluate(st, &trace.spans, now);
        let decision = if keep { "kept" } else { "dropped" };
        self.metrics
            .sampled
            .get_or_create(&labels(&[("component", &self.id), ("decision", decision)]))
            .inc_by(trace.spans.len() as u64);
        if keep {
            st.outbox.entry(id.0.clone()).or_default().extend(trace.spans);
        }
        st.decided.insert(id.clone(), keep);
        st.decided_order.push_back(id);
        while st.decided_order.len() > DECIDED_MEMORY {
            if let Some(old) = st.decided_order.pop_front() {
                st.decided.remove(&old);
            }
        }
    }

    fn evaluate(&self, st: &mut State, spans: &[Span], now: Instant) -> bool {
        let root = spans.iter().find(|s| s.parent_span_id.is_none());
        let start = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_time_unix_nano).max().unwrap_or(0);
        let duration = end.saturating_sub(start);
        let root_key = root.map(|r| (r.service_name().to_owned(), r.name.clone()));
        let mut keep = false;
        for (_, policy) in &self.config.policies {
            if self.policy_keeps(st, policy, spans, duration, root_key.as_ref(), now) {
                keep = true;
                break;
            }
        }
        if let (Some(key), Some(r)) = (root_key, root) {
            st.latencies.record(key, r.duration_nanos());
        }
        keep
    }

    fn policy_keeps(
        &self,
        st: &mut State,
        policy: &Policy,
        spans: &[Span],
        duration: u64,
        root_key: Option<&(String, String)>,
        now: Instant,
    ) -> bool {
        let attr = |span: &Span, key: &str| -> Option<Value> {
            span.attributes
                .iter()
                .chain(span.resource.attributes())
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.clone())
        };
        match policy {
            Policy::AlwaysSample => true,
            Policy::StatusCode(codes) => spans.iter().any(|s| codes.contains(&s.status.code)),
            Policy::Latency { threshold, upper } => {
                duration >= threshold.as_nanos() as u64
                    && upper.is_none_or(|u| duration <= u.as_nanos() as u64)
            }
            Policy::StringAttribute { key, values, regex, invert } => {
                let hit = spans.iter().any(|s| {
                    attr(s, key).is_some_and(|v| {
                        let text = v.to_text();
                        match regex {
                            Some(res) => res.iter().any(|r| r.is_match(&text)),
                            None => values.contains(&text),
                        }
                    })
                });
                hit != *invert
            }
            Policy::NumericAttribute { key, min, max } => spans.iter().any(|s| match attr(s, key) {
                Some(Value::Int(i)) => (*min..=*max).contains(&(i as f64)),
                Some(Value::Double(d)) => (*min..=*max).contains(&d),
                _ => false,
            }),
            Policy::BooleanAttribute { key, value } => {
                spans.iter().any(|s| matches!(attr(s, key), Some(Value::Bool(b)) if b == *value))
            }
            Policy::Probabilistic { percentage } => spans.first().is_some_and(|s| {
                super::probabilistic::randomness(s.trace_id, "")
                    >= super::probabilistic::threshold(*percentage)
            }),
            Policy::RateLimiting { spans_per_second } => {
                if now.duration_since(st.rate_window.0) >= Duration::from_secs(1) {
                    st.rate_window = (now, 0);
                }
                let n = spans.len() as u64;
                if st.rate_window.1 + n <= *spans_per_second {
                    st.rate_window.1 += n;
                    true
                } else {
                    false
                }
            }
            Policy::And(children) => {
                children.iter().all(|c| self.policy_keeps(st, c, spans, duration, root_key, now))
            }
            Policy::SlowerThanP99 => {
                let root = spans.iter().find(|s| s.parent_span_id.is_none());
                match (root_key, root) {
                    (Some(key), Some(r)) => st.latencies.above_p99(key, r.duration_nanos()),
                    _ => false,
                }
            }
        }
    }

    /// Sends the kept spans, one batch per tenant.
    async fn send_outbox(&self) {
        let outbox = std::mem::take(&mut self.state.lock().outbox);
        for (tenant, spans) in outbox {
            if spans.is_empty() {
                continue;
            }
            let batch = Batch::from_spans(spans).with_tenant(tenant.clone());
            if let Err(e) = self.next.consume_traces(batch.clone()).await {
                tracing::warn!(error = %e, "tail sampler: next stage refused kept spans; will retry");
                let (spans, _) = batch.into_parts();
                let mut st = self.state.lock();
                let waiting = st.outbox.entry(tenant).or_default();
                let mut kept = spans;
                kept.append(waiting);
                *waiting = kept;
            }
        }
    }

    /// Decides every waiting trace now (for shutdown and tests).
    pub async fn decide_all(&self) {
        let now = Instant::now();
        {
            let mut st = self.state.lock();
            let ids: Vec<Key> = st.order.drain(..).map(|(_, id)| id).collect();
            for id in ids {
                self.decide(&mut st, id, now);
            }
        }
        self.send_outbox().await;
    }
}

#[async_trait]
impl TracesConsumer for TailSampler {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.outbox.values().map(Vec::len).sum::<usize>() > self.config.max_outbox_spans {
            self.metrics
                .refused
                .get_or_create(&labels(&[("component", &self.id), ("reason", "outbox_full")]))
                .inc();
            return Err(ConsumeError::Overloaded {
                reason: "tail sampler is waiting for the next stage".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        let tenant = batch.tenant().clone();
        let (spans, _) = batch.into_parts();
        for span in spans {
            let id = (tenant.clone(), span.trace_id);
            if let Some(keep) = st.decided.get(&id).copied() {
                if keep {
                    st.outbox.entry(tenant.clone()).or_default().push(span);
                }
                continue;
            }
            match st.pending.get_mut(&id) {
                Some(p) => p.spans.push(span),
                None => {
                    st.pending.insert(id.clone(), Pending { spans: vec![span] });
                    st.order.push_back((now, id));
                }
            }
        }
        // Over the bound: decide the oldest early instead of dropping.
        while st.pending.len() > self.config.num_traces {
            let Some((_, id)) = st.order.pop_front() else { break };
            self.decide(&mut st, id, now);
        }
        Ok(())
    }
}

#[async_trait]
impl Component for TailSampler {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        self.decide_all().await;
    }
}
