//! `loadgen logs-bench`: the log store's storage cost and query latency.
//!
//! Generates realistic log records (ten services, a severity mix, HTTP- and
//! order-style messages, 8 records per trace from 3 services), writes them through the
//! store's `LogsConsumer` in a temporary (or given) folder, flushes, then
//! measures bytes per stored record against the raw OTLP bytes, the logs
//! of one trace (p50/p99) and body searches (a rare term, which reads every
//! block, and a common one), through the store's `LogReader` in-process:
//! the store's share of an `/api/logs` request, without HTTP and JSON.
//!
//! In-process, to measure the store alone; ingest over the wire is the send
//! mode's `--signal logs` (`logs_wire.rs`), with these records.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_logstore::{LogStore, Options};
use sightline_model::{
    BodyMatcher, KeyValue, LogBatch, LogQuery, LogReader as _, LogRecord, LogsConsumer as _, MemoryBudget,
    Resource, Scope, SpanId, TraceId, Value, grams_of_substring, words_of_substring,
};

use crate::Error;
use crate::generate::Rng;

/// Options of `loadgen logs-bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogsArgs {
    /// Records to store.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Records per export batch.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// The store's folder (kept); a temporary one by default (deleted).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The memory budget the store derives its head size from.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub memory_limit: u64,
    /// The bound of the log block cache (footers and trace id filters);
    /// by default the memory budget's share.
    #[arg(long, value_parser = parse_bytes)]
    pub block_cache: Option<u64>,
    /// The bound of the log word cache (body word filters); by default
    /// the memory budget's share.
    #[arg(long, value_parser = parse_bytes)]
    pub word_cache: Option<u64>,
    /// Trace lookups.
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
    /// Runs of each body search.
    #[arg(long, default_value_t = 20)]
    pub searches: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let (num, mult) = match text.strip_suffix("GiB") {
        Some(n) => (n, 1 << 30),
        None => match text.strip_suffix("MiB") {
            Some(n) => (n, 1 << 20),
            None => (text, 1),
        },
    };
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|e| format!("{text:?}: {e}"))
}

/// What [`logs_bench`] measured.
#[derive(Debug, Clone)]
pub(crate) struct LogsReport {
    /// Records stored.
    pub records: u64,
    /// OTLP protobuf bytes per record, as exported.
    pub otlp_bytes_per_record: f64,
    /// Block bytes per record, after flush.
    pub stored_bytes_per_record: f64,
    /// Blocks the records ended in.
    pub blocks: usize,
    /// Stored bytes per record of each column (compressed, all blocks).
    pub columns: Vec<(String, f64)>,
    /// Wall time of ingest, the final flush and merges (a busy machine's wall time).
    pub ingest: Duration,
    /// Logs of one trace: median, 99th percentile.
    pub trace_p50: Duration,
    /// See `trace_p50`.
    pub trace_p99: Duration,
    /// Records a trace lookup returned on average.
    pub trace_hits: f64,
    /// A body search for a phrase in about one record (`order N failed`:
    /// the word index applies): median, p95.
    pub rare_search_p50: Duration,
    /// See `rare_search_p50`.
    pub rare_search_p95: Duration,
    /// A body search for one rare number alone (no whole word: every body
    /// is read): median, p95.
    pub scan_search_p50: Duration,
    /// See `scan_search_p50`.
    pub scan_search_p95: Duration,
    /// A body search for a term in a third of the records (limit 100): median, p95.
    pub common_search_p50: Duration,
    /// See `common_search_p50`.
    pub common_search_p95: Duration,
    /// Peak RSS of this process (store, generator and queries), MiB.
    pub peak_rss_mib: f64,
    /// What the open blocks held after the queries: their resident
    /// summaries plus their parts in the block cache.
    pub block_memory: usize,
    /// Where an open block's memory goes (every part read, cached or not).
    pub block_parts: sightline_logstore::LogBlockMemory,
    /// The block cache's bound.
    pub cache_capacity: usize,
    /// The block cache's counters after the queries.
    pub cache: sightline_logstore::BlockCacheStats,
    /// The word cache's bound.
    pub word_cache_capacity: usize,
    /// The word cache's counters after the queries.
    pub word_cache: sightline_logstore::BlockCacheStats,
}

impl LogsReport {
    /// As one JSON object (durations in ms).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        serde_json::json!({
            "records": self.records,
            "otlp_bytes_per_record": self.otlp_bytes_per_record,
            "stored_bytes_per_record": self.stored_bytes_per_record,
            "ratio": self.stored_bytes_per_record / self.otlp_bytes_per_record,
            "blocks": self.blocks,
            "column_bytes_per_record": self.columns.iter().map(|(n, b)| (n.clone(), serde_json::json!(b))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "ingest_s": self.ingest.as_secs_f64(),
            "trace_p50_ms": ms(self.trace_p50),
            "trace_p99_ms": ms(self.trace_p99),
            "trace_hits": self.trace_hits,
            "rare_search_p50_ms": ms(self.rare_search_p50),
            "rare_search_p95_ms": ms(self.rare_search_p95),
            "scan_search_p50_ms": ms(self.scan_search_p50),
            "scan_search_p95_ms": ms(self.scan_search_p95),
            "common_search_p50_ms": ms(self.common_search_p50),
            "common_search_p95_ms": ms(self.common_search_p95),
            "peak_rss_mib": self.peak_rss_mib,
            "block_memory": self.block_memory,
            "block_parts": {
                "footer_uncached": self.block_parts.footer_uncached,
                "footer": self.block_parts.footer,
                "page_index": self.block_parts.page_index,
                "trace_blooms": self.block_parts.trace_blooms,
                "words": self.block_parts.words,
                "resident": self.block_parts.resident,
            },
            "cache_capacity": self.cache_capacity,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_evictions": self.cache.evictions,
            "word_cache_capacity": self.word_cache_capacity,
            "word_cache_hits": self.word_cache.hits,
            "word_cache_misses": self.word_cache.misses,
            "word_cache_evictions": self.word_cache.evictions,
        })
    }
}

impl std::fmt::Display for LogsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} records in {} blocks, ingest+flush+merges {:.1}s",
            self.records,
            self.blocks,
            self.ingest.as_secs_f64()
        )?;
        writeln!(
            f,
            "bytes/record: OTLP {:.1}, stored {:.1} ({:.3}×)",
            self.otlp_bytes_per_record,
            self.stored_bytes_per_record,
            self.stored_bytes_per_record / self.otlp_bytes_per_record
        )?;
        let columns: Vec<String> = self.columns.iter().map(|(n, b)| format!("{n} {b:.2}")).collect();
        writeln!(f, "bytes/record by column: {}", columns.join(", "))?;
        writeln!(
            f,
            "logs of one trace: p50 {:?} p99 {:?} ({:.1} records each)",
            self.trace_p50, self.trace_p99, self.trace_hits
        )?;
        writeln!(
            f,
            "body search, rare phrase: p50 {:?} p95 {:?}",
            self.rare_search_p50, self.rare_search_p95
        )?;
        writeln!(
            f,
            "body search, rare number alone (full scan): p50 {:?} p95 {:?}",
            self.scan_search_p50, self.scan_search_p95
        )?;
        writeln!(
            f,
            "body search, common term: p50 {:?} p95 {:?}",
            self.common_search_p50, self.common_search_p95
        )?;
        let p = &self.block_parts;
        let per = |b: usize| b as f64 / self.records.max(1) as f64;
        writeln!(
            f,
            "open block parts, B/record: footer before the cache {:.3}; now footer {:.3}, offset index {:.3}, \
             trace id filters {:.3}, word filters {:.3}, resident {:.3} (all {:.3}, before {:.3})",
            per(p.footer_uncached),
            per(p.footer),
            per(p.page_index),
            per(p.trace_blooms),
            per(p.words),
            per(p.resident),
            per(p.total()),
            per(p.before()),
        )?;
        write!(
            f,
            "open blocks hold {:.2} MiB after the queries (block cache bound {:.2} MiB: {} hits, {} misses, {} \
             evictions; word cache bound {:.2} MiB: {} hits, {} misses, {} evictions); peak RSS {:.1} MiB",
            self.block_memory as f64 / 1048576.0,
            self.cache_capacity as f64 / 1048576.0,
            self.cache.hits,
            self.cache.misses,
            self.cache.evictions,
            self.word_cache_capacity as f64 / 1048576.0,
            self.word_cache.hits,
            self.word_cache.misses,
            self.word_cache.evictions,
            self.peak_rss_mib
        )
    }
}

const SERVICES: [&str; 10] = [
    "gateway",
    "orders",
    "worker",
    "payments",
    "inventory",
    "users",
    "search",
    "notifier",
    "auditor",
    "billing",
];
const ROUTES: [&str; 6] =
    ["/api/orders", "/api/orders/{id}", "/api/users/{id}", "/api/search", "/api/cart", "/health"];
pub(crate) const RECORDS_PER_TRACE: u64 = 8;

/// Realistic log records (shared with the send mode's `--signal logs`).
pub(crate) struct Generator {
    resources: Vec<Arc<Resource>>,
    scope: Arc<Scope>,
    start: u64,
}

impl Generator {
    pub(crate) fn new(records: u64) -> Generator {
        let resources = SERVICES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let kv = |k: &str, v: &str| KeyValue { key: k.into(), value: Value::Str(v.into()) };
                Arc::new(Resource::new(
                    vec![
                        kv("service.name", s),
                        kv("service.version", "1.4.2"),
                        kv("service.instance.id", &format!("{s}-7f9c{i}d")),
                        kv("host.name", &format!("node-{}", i % 3)),
                        kv("deployment.environment", "production"),
                        kv("telemetry.sdk.language", "python"),
                    ],
                    0,
                    String::new(),
                ))
            })
            .collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        // One record every 100 µs of simulated time, ending now.
        Generator {
            resources,
            scope: Arc::new(Scope { name: "app.logging".into(), ..Scope::default() }),
            start: now - records * 100_000,
        }
    }

    pub(crate) fn trace_id(n: u64) -> TraceId {
        let mut rng = Rng::for_item(0x7a11, n);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        b[8..].copy_from_slice(&(rng.next_u64() | 1).to_be_bytes());
        TraceId::from_bytes(b).unwrap_or_else(|_| unreachable!("non-zero"))
    }

    pub(crate) fn record(&self, k: u64) -> LogRecord {
        let mut rng = Rng::for_item(0x1095, k);
        let trace = k / RECORDS_PER_TRACE;
        // A request passes three services (gateway → orders → worker, say),
        // each writing a few lines of it.
        let hop = [0, 0, 0, 1, 1, 1, 2, 2][(k % RECORDS_PER_TRACE) as usize];
        let service = (trace + hop) % SERVICES.len() as u64;
        let roll = rng.below(100);
        let (severity, text) = match roll {
            0..=2 => (17, "ERROR"),
            3..=9 => (13, "WARN"),
            10..=29 => (5, "DEBUG"),
            _ => (9, "INFO"),
        };
        let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let order = rng.below(1_000_000);
        let ms = rng.below(900) + 1;
        let body = match roll {
            0..=2 => format!("order {order} failed: upstream timeout after {ms}ms (payments unavailable)"),
            3..=9 => format!("slow request GET {route} took {ms}ms user=u{}", rng.below(50_000)),
            10..=29 => format!("cache miss key=order:{order} shard={}", rng.below(16)),
            _ => format!("GET {route} 200 in {ms}ms order={order} user=u{}", rng.below(50_000)),
        };
        let span = rng.next_u64() | 1;
        LogRecord {
            time_unix_nano: self.start + k * 100_000,
            observed_time_unix_nano: self.start + k * 100_000 + 250_000,
            severity_number: severity,
            severity_text: text.into(),
            body: Value::from(body),
            attributes: vec![
                KeyValue { key: "code.function".into(), value: Value::Str("handle_request".into()) },
                KeyValue { key: "http.route".into(), value: Value::Str(route.into()) },
                KeyValue { key: "order.id".into(), value: Value::Int(order as i64) },
            ],
            dropped_attributes_count: 0,
            flags: 1,
            trace_id: Some(Self::trace_id(trace)),
            span_id: SpanId::from_bytes(span.to_be_bytes()).ok(),
            event_name: String::new(),
            resource: Arc::clone(&self.resources[service as usize]),
            scope: Arc::clone(&self.scope),
        }
    }
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i]
}

fn store_error(e: impl std::fmt::Display) -> Error {
    Error::Generate(format!("log store: {e}"))
}

/// Runs the benchmark.
pub(crate) async fn logs_bench(args: &LogsArgs) -> Result<LogsReport, Error> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("sightline-logs-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let memory = Arc::new(MemoryBudget::new(args.memory_limit));
    let mut options = Options::new(&dir, memory);
    if let Some(bytes) = args.block_cache {
        options.block_cache =
            Arc::new(sightline_logstore::FooterCache::new(usize::try_from(bytes).unwrap_or(usize::MAX)));
    }
    if let Some(bytes) = args.word_cache {
        options.word_cache =
            Arc::new(sightline_logstore::FooterCache::new(usize::try_from(bytes).unwrap_or(usize::MAX)));
    }
    let cache = Arc::clone(&options.block_cache);
    let word_cache = Arc::clone(&options.word_cache);
    let store = LogStore::open(options).await.map_err(store_error)?;
    let generator = Generator::new(args.records);
    let started = Instant::now();
    let mut otlp_bytes = 0u64;
    let mut k = 0u64;
    while k < args.records {
        let n = (args.batch as u64).min(args.records - k);
        let records: Vec<LogRecord> = (k..k + n).map(|i| generator.record(i)).collect();
        let batch = LogBatch::from_records(records);
        otlp_bytes += batch.otlp_bytes().len() as u64;
        loop {
            match store.consume_logs(batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    // Backpressure: wait as an exporter would.
                    tokio::time::sleep(e.retry_after().min(Duration::from_millis(50))).await;
                }
            }
        }
        k += n;
    }
    store.flush_now().await.map_err(store_error)?;
    // Queries are measured over the settled store: merges done.
    store.compact_now().await.map_err(store_error)?;
    let ingest = started.elapsed();
    let blocks = store.blocks();
    let stored: u64 = blocks.iter().map(|b| b.size_bytes).sum();
    let per_record = |bytes: u64| bytes as f64 / args.records.max(1) as f64;
    let columns = store.column_bytes().into_iter().map(|(n, b)| (n, per_record(b))).collect();

    let traces = args.records.div_ceil(RECORDS_PER_TRACE).max(1);
    let mut rng = Rng::new(42);
    let mut trace_times = Vec::with_capacity(args.lookups);
    let mut hits = 0usize;
    for _ in 0..args.lookups {
        let q = LogQuery { trace_id: Some(Generator::trace_id(rng.below(traces))), ..LogQuery::default() };
        let t = Instant::now();
        let page = store.find_logs(&q).await.map_err(store_error)?;
        trace_times.push(t.elapsed());
        hits += page.records.len();
    }
    // As `/api/logs?q=` builds it: the matcher, plus the whole words of
    // the substring for the word index.
    let search = |term: String| {
        let q = LogQuery {
            body_words: words_of_substring(&term),
            body_grams: grams_of_substring(&term),
            body: Some(BodyMatcher::new(move |t| t.contains(term.as_str()))),
            ..LogQuery::default()
        };
        let store = &store;
        async move {
            let t = Instant::now();
            store.find_logs(&q).await.map(|_| t.elapsed()).map_err(store_error)
        }
    };
    let mut rare = Vec::new();
    let mut scan = Vec::new();
    let mut common = Vec::new();
    for _ in 0..args.searches {
        // An order id that appears in about one record: as a phrase, its
        // whole word lets the word index skip row groups; alone (it may be
        // part of a longer word), every body is read.
        let order = rng.below(900_000) + 100_000;
        rare.push(search(format!("order {order} failed")).await?);
        scan.push(search(format!("{order}")).await?);
        common.push(search("user=u".to_owned()).await?);
    }
    let block_memory = store.block_memory_size();
    let cache_stats = cache.stats();
    let word_cache_stats = word_cache.stats();
    let block_parts = store.block_memory().map_err(store_error)?;
    store.shutdown().await;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(LogsReport {
        records: args.records,
        otlp_bytes_per_record: otlp_bytes as f64 / args.records.max(1) as f64,
        stored_bytes_per_record: stored as f64 / args.records.max(1) as f64,
        blocks: blocks.len(),
        columns,
        ingest,
        trace_p50: percentile(trace_times.clone(), 0.5),
        trace_p99: percentile(trace_times, 0.99),
        trace_hits: hits as f64 / args.lookups.max(1) as f64,
        rare_search_p50: percentile(rare.clone(), 0.5),
        rare_search_p95: percentile(rare, 0.95),
        scan_search_p50: percentile(scan.clone(), 0.5),
        scan_search_p95: percentile(scan, 0.95),
        common_search_p50: percentile(common.clone(), 0.5),
        common_search_p95: percentile(common, 0.95),
        peak_rss_mib: peak_rss_mib(),
        block_memory,
        block_parts,
        cache_capacity: cache.capacity(),
        cache: cache_stats,
        word_cache_capacity: word_cache.capacity(),
        word_cache: word_cache_stats,
    })
}

/// The process's peak resident set (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
