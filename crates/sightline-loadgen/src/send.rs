//! The send loop: workers claim request numbers, build or patch the
//! request, pace to the rate, send, honour retry hints, and count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Mutex;

use bytes::Bytes;

use crate::client::{Answer, Protocol, Sender, Signal};
use crate::generate::{Generator, Profile, Shape, TraceSample};
use crate::template::{Patch, Template};
use crate::{Error, SendArgs};

/// What one run did. Rates count only acknowledged spans, after the warm-up.
/// With `--signal logs` every "span" below is a log record.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Signal sent.
    pub signal: Signal,
    /// Transport used.
    pub protocol: Protocol,
    /// Attribute profile.
    pub profile: Profile,
    /// Spans per request.
    pub spans_per_request: usize,
    /// Concurrent senders.
    pub concurrency: usize,
    /// Requests answered OK.
    pub requests_ok: u64,
    /// Spans the server acknowledged (accepted, not rejected).
    pub spans_acked: u64,
    /// Spans the server rejected through partial success or a permanent error.
    pub spans_rejected: u64,
    /// Span sends that were refused retryably and sent again (a span refused
    /// twice counts twice).
    pub spans_retried: u64,
    /// Retryable refusals received.
    pub retries: u64,
    /// Spans given up on after retrying until the retry timeout.
    pub spans_dropped: u64,
    /// Request bytes acknowledged.
    pub bytes_acked: u64,
    /// Wall time from the first send to the last answer.
    pub elapsed: Duration,
    /// Acknowledged spans per second over the measured window.
    pub spans_per_sec: f64,
    /// Acknowledged request megabytes (10^6 B) per second over the window.
    pub mb_per_sec: f64,
    /// Median latency of acknowledged requests.
    pub latency_p50: Duration,
    /// 99th percentile latency of acknowledged requests.
    pub latency_p99: Duration,
    /// The last error or refusal seen, if any.
    pub last_error: Option<String>,
    /// Earliest and latest span start sent (ns since the epoch).
    pub start_range: (u64, u64),
}

impl Report {
    /// The report as one JSON object (for scripts).
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "signal": self.signal.name(),
            "protocol": self.protocol.name(),
            "profile": self.profile.name(),
            "spans_per_request": self.spans_per_request,
            "concurrency": self.concurrency,
            "requests_ok": self.requests_ok,
            "spans_acked": self.spans_acked,
            "spans_rejected": self.spans_rejected,
            "spans_retried": self.spans_retried,
            "retries": self.retries,
            "spans_dropped": self.spans_dropped,
            "bytes_acked": self.bytes_acked,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "spans_per_sec": self.spans_per_sec,
            "mb_per_sec": self.mb_per_sec,
            "bytes_per_span": if self.spans_acked > 0 { self.bytes_acked as f64 / self.spans_acked as f64 } else { 0.0 },
            "latency_p50_ms": self.latency_p50.as_secs_f64() * 1e3,
            "latency_p99_ms": self.latency_p99.as_secs_f64() * 1e3,
            "last_error": self.last_error,
        });
        // Log runs also name their counts as records, for readers that do
        // not know the span-named keys above count records too.
        if self.signal == Signal::Logs
            && let Some(map) = json.as_object_mut()
        {
            map.insert("records_acked".into(), self.spans_acked.into());
            map.insert("records_per_sec".into(), self.spans_per_sec.into());
        }
        json
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} x{}: {:.0} {item}/s, {:.1} MB/s; acked {} {item} in {} requests ({:.1}s), rejected {}, \
             retried {} ({} refusals), dropped {}; latency p50 {:.1} ms p99 {:.1} ms",
            self.protocol.name(),
            if self.signal == Signal::Logs { "logs" } else { self.profile.name() },
            self.concurrency,
            self.spans_per_sec,
            self.mb_per_sec,
            self.spans_acked,
            self.requests_ok,
            self.elapsed.as_secs_f64(),
            self.spans_rejected,
            self.spans_retried,
            self.retries,
            self.spans_dropped,
            self.latency_p50.as_secs_f64() * 1e3,
            self.latency_p99.as_secs_f64() * 1e3,
            item = self.signal.item(),
        )?;
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        Ok(())
    }
}

/// Where request bodies come from.
pub(crate) enum Source {
    /// Pre-built templates, patched into new traces per request.
    Pool { templates: Vec<Template>, seed: u64, base: u64 },
    /// Every request generated afresh (slower; for storage measurements,
    /// where repeated attribute values would flatter compression).
    Fresh { generator: Generator, spans: usize },
    /// Every logs request generated afresh.
    FreshLogs { generator: crate::logs::Generator, records: usize },
}

/// A body ready to send.
pub(crate) struct Built {
    pub(crate) body: Bytes,
    pub(crate) spans: usize,
    /// First trace of the request as sent (for the query benchmark).
    pub(crate) sample: Option<TraceSample>,
    pub(crate) min_start: u64,
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Source {
    pub(crate) fn new(
        profile: Profile,
        shape: Shape,
        seed: u64,
        spans: usize,
        pool: usize,
    ) -> Result<Source, Error> {
        let generator = Generator::new(profile, shape, seed);
        if pool == 0 {
            return Ok(Source::Fresh { generator, spans });
        }
        let base = now_nanos();
        let templates = (0..pool as u64)
            .map(|k| {
                let (request, samples) = generator.request(k, spans, base);
                Template::new(&request, samples).map_err(|e| Error::Generate(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Source::Pool { templates, seed, base })
    }

    /// Log requests of `records` each: a pool of templates patched per
    /// request as for spans, or (`pool` 0) every request afresh.
    pub(crate) fn logs(seed: u64, records: usize, pool: usize) -> Result<Source, Error> {
        let generator = crate::logs::Generator::new(0);
        if pool == 0 {
            return Ok(Source::FreshLogs { generator, records });
        }
        let base = now_nanos();
        let templates = (0..pool as u64)
            .map(|k| {
                Template::for_logs(&crate::logs_wire::request(&generator, k, records, base))
                    .map_err(|e| Error::Generate(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Source::Pool { templates, seed, base })
    }

    pub(crate) fn build(&self, k: u64) -> Result<Built, Error> {
        let (template, patch) = match self {
            Source::Pool { templates, seed, base } => {
                let Some(t) = templates.get((k % templates.len().max(1) as u64) as usize) else {
                    return Err(Error::Generate("empty template pool".to_owned()));
                };
                let patch = Patch::for_request(*seed, k, now_nanos().saturating_sub(*base));
                (std::borrow::Cow::Borrowed(t), patch)
            }
            Source::Fresh { generator, spans } => {
                let (request, samples) = generator.request(k, *spans, now_nanos());
                let t = Template::new(&request, samples).map_err(|e| Error::Generate(e.to_string()))?;
                (std::borrow::Cow::Owned(t), Patch::IDENTITY)
            }
            Source::FreshLogs { generator, records } => {
                let request = crate::logs_wire::request(generator, k, *records, now_nanos());
                let t = Template::for_logs(&request).map_err(|e| Error::Generate(e.to_string()))?;
                (std::borrow::Cow::Owned(t), Patch::IDENTITY)
            }
        };
        let sample = template
            .samples()
            .first()
            .map(|s| TraceSample { trace_id: patch.trace_id(&s.trace_id), user: s.user.clone() });
        Ok(Built {
            body: template.render(&patch),
            spans: template.spans(),
            sample,
            min_start: template.min_start().wrapping_add(patch.time_delta),
        })
    }
}

#[derive(Default)]
struct Counters {
    requests_ok: AtomicU64,
    acked: AtomicU64,
    acked_in_window: AtomicU64,
    bytes_in_window: AtomicU64,
    rejected: AtomicU64,
    retried: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    bytes: AtomicU64,
    min_start: AtomicU64,
    max_start: AtomicU64,
}

struct Shared {
    source: Source,
    counters: Counters,
    next: AtomicU64,
    max_requests: u64,
    start: Instant,
    window_start: Instant,
    deadline: Option<Instant>,
    rate: f64,
    spans_per_request: usize,
    retry_timeout: Duration,
    last_error: Mutex<Option<String>>,
    samples: Mutex<Vec<(u64, TraceSample)>>,
    keep_samples: bool,
}

/// The outcome of [`run_with_samples`]: the report and the first trace of
/// each acknowledged request, by request number.
pub(crate) struct Outcome {
    pub(crate) report: Report,
    pub(crate) samples: Vec<(u64, TraceSample)>,
}

pub(crate) async fn run_with_samples(args: &SendArgs, keep_samples: bool) -> Result<Outcome, Error> {
    let shape = args.shape();
    let spans_per_request = args.spans_per_request.max(1);
    let source = match args.signal {
        Signal::Traces => Source::new(args.profile, shape, args.seed, spans_per_request, args.pool)?,
        Signal::Logs => Source::logs(args.seed, spans_per_request, args.pool)?,
    };
    let max_requests = match args.spans {
        Some(n) => n.div_ceil(spans_per_request as u64),
        None => u64::MAX,
    };
    let duration = match (args.duration, args.spans) {
        (Some(d), _) => Some(d.into()),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let concurrency = args.concurrency.max(1);
    let mut senders = Vec::with_capacity(concurrency);
    let first = Sender::connect(args.protocol, args.signal, &args.endpoint, concurrency).await?;
    for i in 0..concurrency {
        senders.push(match (&first, i) {
            (Sender::Http { .. }, _) | (_, 0) => first.clone(),
            _ => Sender::connect(args.protocol, args.signal, &args.endpoint, concurrency).await?,
        });
    }
    let start = Instant::now();
    let warmup: Duration = args.warmup.map(Into::into).unwrap_or_default();
    let shared = Arc::new(Shared {
        source,
        counters: Counters { min_start: AtomicU64::new(u64::MAX), ..Counters::default() },
        next: AtomicU64::new(0),
        max_requests,
        start,
        window_start: start + warmup,
        deadline: duration.map(|d| start + d),
        rate: args.rate.unwrap_or(0.0),
        spans_per_request,
        retry_timeout: args.retry_timeout.into(),
        last_error: Mutex::new(None),
        samples: Mutex::new(Vec::new()),
        keep_samples,
    });
    let mut tasks = Vec::with_capacity(concurrency);
    for sender in senders {
        tasks.push(tokio::spawn(worker(Arc::clone(&shared), sender)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| Error::Generate(format!("sender task failed: {e}")))??);
    }
    let end = Instant::now();
    let c = &shared.counters;
    let window = end.saturating_duration_since(shared.window_start.min(end));
    let window_secs =
        if window.is_zero() { end.duration_since(start).as_secs_f64() } else { window.as_secs_f64() };
    let (in_window, bytes_in_window) = if window.is_zero() {
        (c.acked.load(Ordering::Relaxed), c.bytes.load(Ordering::Relaxed))
    } else {
        (c.acked_in_window.load(Ordering::Relaxed), c.bytes_in_window.load(Ordering::Relaxed))
    };
    latencies.sort_unstable();
    let pct = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies.get(i).copied().unwrap_or_default()
    };
    let report = Report {
        signal: args.signal,
        protocol: args.protocol,
        profile: args.profile,
        spans_per_request,
        concurrency,
        requests_ok: c.requests_ok.load(Ordering::Relaxed),
        spans_acked: c.acked.load(Ordering::Relaxed),
        spans_rejected: c.rejected.load(Ordering::Relaxed),
        spans_retried: c.retried.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        spans_dropped: c.dropped.load(Ordering::Relaxed),
        bytes_acked: c.bytes.load(Ordering::Relaxed),
        elapsed: end.duration_since(start),
        spans_per_sec: if window_secs > 0.0 { in_window as f64 / window_secs } else { 0.0 },
        mb_per_sec: if window_secs > 0.0 { bytes_in_window as f64 / window_secs / 1e6 } else { 0.0 },
        latency_p50: pct(0.50),
        latency_p99: pct(0.99),
        last_error: shared.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        start_range: (c.min_start.load(Ordering::Relaxed), c.max_start.load(Ordering::Relaxed)),
    };
    let samples = shared.samples.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
    Ok(Outcome { report, samples })
}

async fn worker(shared: Arc<Shared>, mut sender: Sender) -> Result<Vec<Duration>, Error> {
    let c = &shared.counters;
    let mut latencies = Vec::new();
    loop {
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        if k >= shared.max_requests || shared.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(latencies);
        }
        if shared.rate > 0.0 {
            let due = shared.start
                + Duration::from_secs_f64(k as f64 * shared.spans_per_request as f64 / shared.rate);
            tokio::time::sleep_until(due.into()).await;
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(latencies);
            }
        }
        let built = shared.source.build(k)?;
        let n = built.spans as u64;
        let len = built.body.len() as u64;
        let first_try = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let sent = Instant::now();
            match sender.send(built.body.clone()).await {
                Answer::Ok { rejected } => {
                    let done = Instant::now();
                    latencies.push(done.duration_since(sent));
                    let acked = n.saturating_sub(rejected);
                    c.requests_ok.fetch_add(1, Ordering::Relaxed);
                    c.acked.fetch_add(acked, Ordering::Relaxed);
                    c.rejected.fetch_add(rejected, Ordering::Relaxed);
                    c.bytes.fetch_add(len, Ordering::Relaxed);
                    if done >= shared.window_start {
                        c.acked_in_window.fetch_add(acked, Ordering::Relaxed);
                        c.bytes_in_window.fetch_add(len, Ordering::Relaxed);
                    }
                    c.min_start.fetch_min(built.min_start, Ordering::Relaxed);
                    c.max_start.fetch_max(built.min_start, Ordering::Relaxed);
                    if shared.keep_samples
                        && let Some(sample) = &built.sample
                        && let Ok(mut samples) = shared.samples.lock()
                    {
                        samples.push((k, sample.clone()));
                    }
                    break;
                }
                Answer::Retry { after, why } => {
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    note(&shared, why);
                    let delay = after.unwrap_or(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if first_try.elapsed() + delay > shared.retry_timeout {
                        c.dropped.fetch_add(n, Ordering::Relaxed);
                        break;
                    }
                    c.retried.fetch_add(n, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                }
                Answer::Fail { why } => {
                    c.rejected.fetch_add(n, Ordering::Relaxed);
                    note(&shared, why);
                    break;
                }
            }
        }
    }
}

fn note(shared: &Shared, why: String) {
    if let Ok(mut last) = shared.last_error.lock() {
        *last = Some(why);
    }
}
