//! Query latency through the Jaeger HTTP API: trace by id over random
//! stored traces, a service + operation + duration search, and an
//! attribute-equality search, over traces a send run recorded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::generate::{ROOT_SERVICE, Rng, SEARCH_MIN_DURATION, SEARCH_OPERATION, SEARCH_SERVICE, USER_KEY};
use crate::send::Outcome;
use crate::{Error, SendArgs};

/// Options of `loadgen query-bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The query API address (host:port).
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub http_addr: String,
    /// The file a send run wrote with --samples-out.
    #[arg(long, value_name = "FILE")]
    pub samples: PathBuf,
    /// Trace-by-id lookups, over random recorded traces.
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
    /// Runs of each search.
    #[arg(long, default_value_t = 40)]
    pub searches: usize,
    /// Seed for picking traces.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Latencies measured by [`query_bench`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReport {
    /// Traces the samples file lists (one per acknowledged request).
    pub traces_known: usize,
    /// Trace-by-id lookups made, and how many found their trace.
    pub lookups: usize,
    /// See [`QueryReport::lookups`].
    pub lookups_found: usize,
    /// Trace-by-id median.
    pub by_id_p50: Duration,
    /// Trace-by-id 99th percentile.
    pub by_id_p99: Duration,
    /// Service + operation + minimum duration search: median.
    pub search_p50: Duration,
    /// Service + operation + minimum duration search: 95th percentile.
    pub search_p95: Duration,
    /// Traces the first such search returned.
    pub search_hits: usize,
    /// Attribute-equality search (`app.user.id`): median.
    pub tag_p50: Duration,
    /// Attribute-equality search: 95th percentile.
    pub tag_p95: Duration,
    /// Attribute searches run, and how many returned the recorded trace.
    pub tag_searches: usize,
    /// The service + operation + duration search as TraceQL on Tempo's
    /// `/api/search`: median.
    pub traceql_search_p50: Duration,
    /// See [`QueryReport::traceql_search_p50`]: 95th percentile.
    pub traceql_search_p95: Duration,
    /// Traces the first TraceQL search returned.
    pub traceql_search_hits: usize,
    /// The attribute-equality search as TraceQL (`{ span.app.user.id = … }`):
    /// median.
    pub traceql_tag_p50: Duration,
    /// See [`QueryReport::traceql_tag_p50`]: 95th percentile.
    pub traceql_tag_p95: Duration,
    /// TraceQL attribute searches that returned the recorded trace.
    pub traceql_tag_found: usize,
    /// See [`QueryReport::tag_searches`].
    pub tag_found: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl QueryReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "traces_known": self.traces_known,
            "lookups": self.lookups,
            "lookups_found": self.lookups_found,
            "by_id_p50_ms": ms(self.by_id_p50),
            "by_id_p99_ms": ms(self.by_id_p99),
            "search_p50_ms": ms(self.search_p50),
            "search_p95_ms": ms(self.search_p95),
            "search_hits": self.search_hits,
            "tag_p50_ms": ms(self.tag_p50),
            "tag_p95_ms": ms(self.tag_p95),
            "tag_searches": self.tag_searches,
            "tag_found": self.tag_found,
            "traceql_search_p50_ms": ms(self.traceql_search_p50),
            "traceql_search_p95_ms": ms(self.traceql_search_p95),
            "traceql_search_hits": self.traceql_search_hits,
            "traceql_tag_p50_ms": ms(self.traceql_tag_p50),
            "traceql_tag_p95_ms": ms(self.traceql_tag_p95),
            "traceql_tag_found": self.traceql_tag_found,
        })
    }
}

impl std::fmt::Display for QueryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trace by id: p50 {:.2} ms, p99 {:.2} ms ({}/{} found); search service+operation+duration: p50 {:.1} ms, \
             p95 {:.1} ms ({} traces); search {USER_KEY}: p50 {:.1} ms, p95 {:.1} ms ({}/{} found); \
             TraceQL search: p50 {:.1} ms, p95 {:.1} ms ({} traces); TraceQL {USER_KEY}: p50 {:.1} ms, \
             p95 {:.1} ms ({}/{} found)",
            ms(self.by_id_p50),
            ms(self.by_id_p99),
            self.lookups_found,
            self.lookups,
            ms(self.search_p50),
            ms(self.search_p95),
            self.search_hits,
            ms(self.tag_p50),
            ms(self.tag_p95),
            self.tag_found,
            self.tag_searches,
            ms(self.traceql_search_p50),
            ms(self.traceql_search_p95),
            self.traceql_search_hits,
            ms(self.traceql_tag_p50),
            ms(self.traceql_tag_p95),
            self.traceql_tag_found,
            self.tag_searches,
        )
    }
}

/// Writes the samples file: profile, the span start range, and the first
/// trace of every acknowledged request.
pub(crate) fn write_samples(path: &Path, args: &SendArgs, outcome: &Outcome) -> Result<(), Error> {
    let traces: Vec<serde_json::Value> =
        outcome.samples.iter().map(|(_, s)| serde_json::json!([hex(&s.trace_id), s.user])).collect();
    let doc = serde_json::json!({
        "profile": args.profile.name(),
        "first_start_unix_nanos": outcome.report.start_range.0,
        "last_start_unix_nanos": outcome.report.start_range.1,
        "traces": traces,
    });
    std::fs::write(path, doc.to_string()).map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Samples {
    first: u64,
    last: u64,
    traces: Vec<(String, String)>,
}

fn read_samples(path: &Path) -> Result<Samples, Error> {
    let bad = |detail: &str| Error::Samples { path: path.to_owned(), detail: detail.to_owned() };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let traces = doc["traces"]
        .as_array()
        .ok_or_else(|| bad("no traces list"))?
        .iter()
        .filter_map(|t| Some((t.get(0)?.as_str()?.to_owned(), t.get(1)?.as_str()?.to_owned())))
        .collect::<Vec<_>>();
    if traces.is_empty() {
        return Err(bad("lists no traces"));
    }
    Ok(Samples {
        first: doc["first_start_unix_nanos"].as_u64().unwrap_or(0),
        last: doc["last_start_unix_nanos"].as_u64().unwrap_or(0),
        traces,
    })
}

type Client = HyperClient<HttpConnector, Empty<Bytes>>;

/// GETs `path_and_query`, returning the JSON body and the time to the last
/// body byte.
async fn get(
    client: &Client,
    addr: &str,
    path_and_query: &str,
) -> Result<(serde_json::Value, Duration), Error> {
    let what = || path_and_query.chars().take(160).collect::<String>();
    let uri: http::Uri = format!("http://{addr}{path_and_query}")
        .parse()
        .map_err(|e| Error::Query { what: what(), detail: format!("bad URI: {e}") })?;
    let started = Instant::now();
    let response = client.get(uri).await.map_err(|e| Error::Query { what: what(), detail: e.to_string() })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::Query { what: what(), detail: e.to_string() })?
        .to_bytes();
    let took = started.elapsed();
    if status == http::StatusCode::NOT_FOUND {
        return Ok((serde_json::Value::Null, took));
    }
    if !status.is_success() {
        return Err(Error::Query {
            what: what(),
            detail: format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
            ),
        });
    }
    let json =
        serde_json::from_slice(&body).map_err(|e| Error::Query { what: what(), detail: e.to_string() })?;
    Ok((json, took))
}

fn data_len(json: &serde_json::Value) -> usize {
    json["data"].as_array().map_or(0, Vec::len)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs the three query kinds one at a time (latency, not throughput).
pub async fn query_bench(args: &QueryArgs) -> Result<QueryReport, Error> {
    let samples = read_samples(&args.samples)?;
    let client: Client = HyperClient::builder(TokioExecutor::new()).build_http();
    let mut rng = Rng::new(args.seed);
    let n = samples.traces.len() as u64;
    // Jaeger UI always sends a time window; this one covers the run.
    let window = format!(
        "start={}&end={}",
        (samples.first / 1_000).saturating_sub(60_000_000),
        samples.last / 1_000 + 3_600_000_000
    );

    let mut by_id = Vec::with_capacity(args.lookups);
    let mut found = 0;
    for _ in 0..args.lookups {
        let (id, _) = &samples.traces[rng.below(n) as usize];
        let (json, took) = get(&client, &args.http_addr, &format!("/api/traces/{id}")).await?;
        found += usize::from(data_len(&json) > 0);
        by_id.push(took);
    }

    let search = format!(
        "/api/traces?service={}&operation={}&minDuration={}&limit=20&{window}",
        encode(SEARCH_SERVICE),
        encode(SEARCH_OPERATION),
        SEARCH_MIN_DURATION
    );
    let mut searches = Vec::with_capacity(args.searches);
    let mut search_hits = 0;
    for i in 0..args.searches {
        let (json, took) = get(&client, &args.http_addr, &search).await?;
        if i == 0 {
            search_hits = data_len(&json);
        }
        searches.push(took);
    }

    let mut tags = Vec::with_capacity(args.searches);
    let mut tag_found = 0;
    let mut tag_searches = 0;
    for _ in 0..args.searches {
        let (id, user) = &samples.traces[rng.below(n) as usize];
        if user.is_empty() {
            continue;
        }
        tag_searches += 1;
        let tags_param = encode(&format!("{{\"{USER_KEY}\":\"{user}\"}}"));
        // Jaeger requires a service; the root service is in every trace.
        let path =
            format!("/api/traces?service={}&tags={tags_param}&limit=20&{window}", encode(ROOT_SERVICE));
        let (json, took) = get(&client, &args.http_addr, &path).await?;
        let hit = json["data"]
            .as_array()
            .is_some_and(|traces| traces.iter().any(|t| t["traceID"].as_str() == Some(id.as_str())));
        tag_found += usize::from(hit);
        tags.push(took);
    }

    // The same two searches in TraceQL on Tempo's search API (what
    // Grafana's Tempo data source sends; times in seconds).
    let tempo_window = format!(
        "start={}&end={}",
        (samples.first / 1_000_000_000).saturating_sub(60),
        samples.last / 1_000_000_000 + 3_600
    );
    let traceql = format!(
        "{{ resource.service.name = \"{SEARCH_SERVICE}\" && name = \"{SEARCH_OPERATION}\" && duration > {SEARCH_MIN_DURATION} }}"
    );
    let path = format!("/api/search?q={}&limit=20&{tempo_window}", encode(&traceql));
    let mut traceql_searches = Vec::with_capacity(args.searches);
    let mut traceql_search_hits = 0;
    for i in 0..args.searches {
        let (json, took) = get(&client, &args.http_addr, &path).await?;
        if i == 0 {
            traceql_search_hits = json["traces"].as_array().map_or(0, Vec::len);
        }
        traceql_searches.push(took);
    }
    let mut traceql_tags = Vec::with_capacity(args.searches);
    let mut traceql_tag_found = 0;
    for _ in 0..args.searches {
        let (id, user) = &samples.traces[rng.below(n) as usize];
        if user.is_empty() {
            continue;
        }
        let q = format!("{{ span.{USER_KEY} = \"{user}\" }}");
        let path = format!("/api/search?q={}&limit=20&{tempo_window}", encode(&q));
        let (json, took) = get(&client, &args.http_addr, &path).await?;
        // Tempo renders trace ids without leading zeros.
        let want = id.trim_start_matches('0');
        let hit = json["traces"].as_array().is_some_and(|traces| {
            traces.iter().any(|t| t["traceID"].as_str().is_some_and(|t| t.trim_start_matches('0') == want))
        });
        traceql_tag_found += usize::from(hit);
        traceql_tags.push(took);
    }

    for list in [&mut by_id, &mut searches, &mut tags, &mut traceql_searches, &mut traceql_tags] {
        list.sort_unstable();
    }
    Ok(QueryReport {
        traces_known: samples.traces.len(),
        lookups: args.lookups,
        lookups_found: found,
        by_id_p50: percentile(&by_id, 0.50),
        by_id_p99: percentile(&by_id, 0.99),
        search_p50: percentile(&searches, 0.50),
        search_p95: percentile(&searches, 0.95),
        search_hits,
        tag_p50: percentile(&tags, 0.50),
        tag_p95: percentile(&tags, 0.95),
        tag_searches,
        tag_found,
        traceql_search_p50: percentile(&traceql_searches, 0.50),
        traceql_search_p95: percentile(&traceql_searches, 0.95),
        traceql_search_hits,
        traceql_tag_p50: percentile(&traceql_tags, 0.50),
        traceql_tag_p95: percentile(&traceql_tags, 0.95),
        traceql_tag_found,
    })
}
