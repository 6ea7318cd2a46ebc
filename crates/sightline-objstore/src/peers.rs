//! Queries that include live peers' heads.
//!
//! Blocks in the bucket are read by every node, but a span a node
//! acknowledged sits only in that node's head until its next flush (at
//! most `--max-block-age`) and the other nodes' next manifest poll. So a
//! query on any node also asks every live peer for what only that peer
//! has (its heads, `/internal/head/*` in `sightline-api`) and merges the
//! answers with its own by trace, deduplicated by span id (a peer's head
//! and the block it just became may both hold a span).
//!
//! Peers are the nodes whose heartbeat in the bucket is recent and that
//! advertise an address, plus a static `--peers` list; never the node
//! itself. Each peer gets `timeout` to answer; one that does not (down,
//! slow, refusing) is left out and named in the reader's
//! [`SpanReader::warnings`], which the API returns beside the partial
//! result: a query never fails or hangs because of a peer. The caller's
//! `Authorization` header and tenant (`X-Scope-OrgID`) are passed on, so
//! a peer grants exactly what this node granted.
//!
//! What reads peers: traces by id, searches and the listings (services,
//! operations, tag names and values: `/internal/head/{services,
//! operations,tag-names,tag-values}`), merged with the local listing and
//! deduplicated; log searches (`/internal/logs/head`, merged by record,
//! newest first), the log services and live log tails (`peertail.rs`).
//! Dependencies stay local: they are
//! counted over whole traces, which a peer's head alone does not hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use sightline_model::{
    AttributeScope, DependencyLink, LogBatch, LogCursor, LogPage, LogQuery, LogReader, LogRecord,
    LogTenantReaders, Operation, QueryError, Span, SpanKind, SpanReader, TagNames, TagQuery, Tenant,
    TenantReaders, TraceHit, TraceId, TraceQuery, Value, merge_tag_values, span_matches,
};

use crate::{Metrics, Remote};

/// Where a node answers for its heads (`sightline-api`'s internal routes).
const TRACES_PATH: &str = "/internal/head/traces";
const SEARCH_PATH: &str = "/internal/head/search";
const SERVICES_PATH: &str = "/internal/head/services";
const OPERATIONS_PATH: &str = "/internal/head/operations";
const TAG_NAMES_PATH: &str = "/internal/head/tag-names";
const TAG_VALUES_PATH: &str = "/internal/head/tag-values";
const LOG_SERVICES_PATH: &str = "/internal/logs/services";
const LOG_HEAD_PATH: &str = "/internal/logs/head";
/// The most a peer's answer may be: far above what its per-query result
/// budget lets it build, so only a broken peer hits it.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Trace ids per lookup request (keeps the URL short).
const IDS_PER_REQUEST: usize = 100;

/// Labels of a peer request count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerRequest {
    /// `traces`, `search`, `services`, `operations`, `tag_names`,
    /// `tag_values`, `log_services`, `log_head` or `log_tail` (a tail's
    /// start: its outcome is whether it was subscribed).
    pub(crate) op: &'static str,
    /// `ok`, `timeout` or `error`.
    pub(crate) outcome: &'static str,
}

/// How to find and ask peers. `Options` because the binary builds it
/// from its flags.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// `HOST:PORT` of peers' query APIs given by hand (`--peers`).
    pub static_peers: Vec<String>,
    /// This node's own advertised address: never asked (a `--peers` list
    /// shared by all nodes names each node too).
    pub own: Option<String>,
    /// How long each peer has to answer (`--peer-timeout`).
    pub timeout: Duration,
    /// Whether peers speak TLS (they do when this node does: one
    /// deployment, one setting).
    pub https: bool,
    /// PEM CA certificates peers' certificates must chain to (`--peer-ca`);
    /// `None` trusts the system's roots. A peer whose certificate fails
    /// verification is one that did not answer: named in the warnings.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key this node presents to peers
    /// (its own `--tls-cert`/`--tls-key`, when `--tls-client-ca` makes every
    /// node require one).
    pub identity_pem: Option<Vec<u8>>,
}

/// One peer: how a warning names it, and where it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) addr: String,
}

/// The live peers and a client to ask them. See the module docs.
#[derive(Debug)]
pub struct Peers {
    client: reqwest::Client,
    /// For live tails (`peertail.rs`): no limit on the whole answer, which
    /// lasts as long as the tail, but one on each read (a peer sends a
    /// keep-alive frame in quiet times).
    pub(crate) stream_client: reqwest::Client,
    pub(crate) remote: Arc<Remote>,
    pub(crate) options: PeerOptions,
    pub(crate) metrics: Arc<Metrics>,
}

impl Peers {
    /// Peers from `remote`'s heartbeats and `options.static_peers`.
    pub fn new(remote: Arc<Remote>, options: PeerOptions) -> Result<Peers, crate::Error> {
        let metrics = Arc::clone(&remote.cluster.bucket.metrics);
        crate::install_crypto();
        let invalid = |why: String| crate::Error::InvalidUrl { url: "peers".into(), why };
        let stream_client = client_builder(&options)?
            .read_timeout(crate::peertail::read_timeout(options.timeout))
            .build()
            .map_err(|e| invalid(describe(&e)))?;
        let client =
            client_builder(&options)?.timeout(options.timeout).build().map_err(|e| invalid(describe(&e)))?;
        Ok(Peers { client, stream_client, remote, options, metrics })
    }
}

/// A client builder with `options`' connect timeout and TLS settings.
fn client_builder(options: &PeerOptions) -> Result<reqwest::ClientBuilder, crate::Error> {
    let invalid = |why: String| crate::Error::InvalidUrl { url: "peers".into(), why };
    let mut builder = reqwest::Client::builder().connect_timeout(options.timeout);
    if let Some(pem) = &options.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(format!("the peer CA file is not PEM certificates: {}", describe(&e))))?;
        if certs.is_empty() {
            return Err(invalid("the peer CA file holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(pem) = &options.identity_pem {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| invalid(format!("the TLS certificate or key for peers: {}", describe(&e))))?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

impl Peers {
    /// The peers to ask now: the static list, then discovered nodes (a
    /// discovered node at a listed address is named by its node id).
    pub(crate) fn list(&self) -> Vec<Peer> {
        let mut out: Vec<Peer> =
            self.options.static_peers.iter().map(|a| Peer { name: a.clone(), addr: a.clone() }).collect();
        for (node, addr) in self.remote.peer_addrs() {
            let name = format!("{node} at {addr}");
            match out.iter_mut().find(|p| p.addr == addr) {
                Some(p) => p.name = name,
                None => out.push(Peer { name, addr }),
            }
        }
        out.retain(|p| Some(&p.addr) != self.options.own.as_ref());
        out
    }

    /// Wakes when [`Peers::list`] may have changed (the static list never
    /// does; discovered nodes come and go with heartbeats).
    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<BTreeMap<String, String>> {
        self.remote.peer_changes()
    }

    /// Asks `peer` for `path?query`; its spans, or why not.
    async fn ask(
        &self,
        peer: &Peer,
        op: &'static str,
        path: &str,
        query: String,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Vec<u8>, String> {
        let request = self.request(&self.client, peer, path, &query, tenant, credentials);
        let result = self.fetch(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err((true, _)) => "timeout",
            Err((false, _)) => "error",
        };
        self.metrics.peer_requests.get_or_create(&PeerRequest { op, outcome }).inc();
        result.map_err(|(_, why)| why)
    }

    /// A GET of `path?query` from `peer` by `client`, as the caller: its
    /// tenant and `Authorization` header are passed on, so the peer
    /// grants exactly what this node granted.
    pub(crate) fn request(
        &self,
        client: &reqwest::Client,
        peer: &Peer,
        path: &str,
        query: &str,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let scheme = if self.options.https { "https" } else { "http" };
        let mut request = client.get(format!("{scheme}://{}{path}?{query}", peer.addr));
        if !tenant.is_default() {
            request = request.header("X-Scope-OrgID", tenant.as_str());
        }
        if let Some(credentials) = credentials {
            request = request.header(reqwest::header::AUTHORIZATION, credentials);
        }
        request
    }

    /// Sends `request` and reads the answer's body; `Err((timed out, why))`.
    async fn fetch(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, (bool, String)> {
        let timeout = self.options.timeout;
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                (true, format!("no answer within {timeout:?}"))
            } else {
                (false, describe(&e))
            }
        };
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err((false, format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned();
            return Err((false, format!("HTTP {}: {text}", status.as_u16())));
        }
        Ok(body)
    }

    /// Every peer's head spans of traces `ids`, and a warning per peer that
    /// did not answer.
    async fn traces(
        &self,
        ids: &[TraceId],
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> (Vec<Span>, Vec<String>) {
        if ids.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let queries: Vec<String> = ids
            .chunks(IDS_PER_REQUEST)
            .map(|chunk| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for id in chunk {
                    q.append_pair("traceID", &id.to_hex());
                }
                q.finish()
            })
            .collect();
        self.fan_out("traces", TRACES_PATH, &queries, tenant, credentials, spans).await
    }

    /// Every peer's head search for `query`.
    async fn search(
        &self,
        query: &TraceQuery,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> (Vec<Span>, Vec<String>) {
        let encoded = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (name, value) in query.to_pairs() {
                q.append_pair(name, &value);
            }
            q.finish()
        };
        self.fan_out("search", SEARCH_PATH, &[encoded], tenant, credentials, spans).await
    }

    /// Every peer's log head records matching `query` (at most its limit
    /// each), and a warning per peer that did not answer; `None` when the
    /// query cannot be sent (see [`LogQuery::to_pairs`]).
    async fn log_head(
        &self,
        query: &LogQuery,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Option<(Vec<LogRecord>, Vec<String>)> {
        let pairs = query.to_pairs()?;
        let encoded = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (name, value) in &pairs {
                q.append_pair(name, value);
            }
            q.finish()
        };
        let decode = |body: &[u8]| {
            let decoded = sightline_model::otlp::decode_logs_bytes(body)
                .map_err(|e| format!("undecodable answer: {e}"))?;
            Ok(decoded.records)
        };
        Some(self.fan_out("log_head", LOG_HEAD_PATH, &[encoded], tenant, credentials, decode).await)
    }

    /// Every peer's answer to listing `path?pairs`, each decoded by
    /// `decode` from one protobuf `AnyValue`.
    async fn listing<T>(
        &self,
        op: &'static str,
        path: &str,
        pairs: &[(&str, String)],
        tenant: &Tenant,
        credentials: Option<&str>,
        decode: fn(Value) -> Option<Vec<T>>,
    ) -> (Vec<T>, Vec<String>) {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                q.append_pair(name, value);
            }
            q.finish()
        };
        let decode = move |body: &[u8]| {
            let value = sightline_model::otlp::decode_value_bytes(body)
                .map_err(|e| format!("undecodable answer: {e}"))?;
            decode(value).ok_or_else(|| "answer is not the expected listing".to_owned())
        };
        self.fan_out(op, path, &[query], tenant, credentials, decode).await
    }

    /// Each of `queries` to every peer at once; a peer failing any of them
    /// is named once.
    async fn fan_out<T>(
        &self,
        op: &'static str,
        path: &str,
        queries: &[String],
        tenant: &Tenant,
        credentials: Option<&str>,
        decode: impl Fn(&[u8]) -> Result<Vec<T>, String>,
    ) -> (Vec<T>, Vec<String>) {
        let peers = self.list();
        let decode = &decode;
        let asks = peers.iter().map(|peer| async move {
            let mut spans = Vec::new();
            for query in queries {
                let answer = self.ask(peer, op, path, query.clone(), tenant, credentials).await;
                match answer.and_then(|body| decode(&body)) {
                    Ok(found) => spans.extend(found),
                    Err(why) => return Err(format!("peer {} did not answer: {why}", peer.name)),
                }
            }
            Ok(spans)
        });
        let mut spans = Vec::new();
        let mut warnings = Vec::new();
        for result in join_all(asks).await {
            match result {
                Ok(found) => spans.extend(found),
                Err(warning) => {
                    tracing::debug!(%warning, "partial query result");
                    warnings.push(warning);
                }
            }
        }
        (spans, warnings)
    }
}

/// The spans of an OTLP protobuf answer.
fn spans(body: &[u8]) -> Result<Vec<Span>, String> {
    let decoded =
        sightline_model::otlp::decode_protobuf(body).map_err(|e| format!("undecodable answer: {e}"))?;
    Ok(decoded.spans)
}

/// The items of an array answer.
fn items(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// A service listing: names.
fn names(value: Value) -> Option<Vec<String>> {
    items(value)?
        .into_iter()
        .map(|v| match v {
            Value::Str(s) => Some(s.into()),
            _ => None,
        })
        .collect()
}

/// An operation listing: `[name, kind number]` pairs.
fn operations(value: Value) -> Option<Vec<Operation>> {
    items(value)?
        .into_iter()
        .map(|v| match items(v)?.as_slice() {
            [Value::Str(name), Value::Int(kind)] => Some(Operation {
                name: name.as_str().to_owned(),
                kind: SpanKind::from_i32(i32::try_from(*kind).ok()?),
            }),
            _ => None,
        })
        .collect()
}

/// A tag name listing: (scope, names) pairs.
fn scoped_names(value: Value) -> Option<Vec<(AttributeScope, Vec<String>)>> {
    let Value::Map(map) = value else { return None };
    map.into_iter().map(|kv| Some((AttributeScope::from_name(&kv.key)?, names(kv.value)?))).collect()
}

/// The query pairs of a tag listing's scope and window.
fn tag_pairs(scope: Option<AttributeScope>, query: &TagQuery) -> Vec<(&'static str, String)> {
    let mut pairs = vec![("limit", query.limit.to_string())];
    pairs.extend(scope.map(|s| ("scope", s.name().to_owned())));
    pairs.extend(query.start_min_unix_nanos.map(|t| ("start", t.to_string())));
    pairs.extend(query.start_max_unix_nanos.map(|t| ("end", t.to_string())));
    pairs
}

/// An error with its causes: reqwest's own message ("error sending request
/// for url") says little without them.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The query side of a node with peers: each request's reader merges
/// this node's data with its live peers' heads. See the module docs.
pub struct PeerReaders {
    local: Arc<dyn TenantReaders>,
    peers: Arc<Peers>,
}

impl PeerReaders {
    /// Reads `local`, plus `peers`' heads.
    pub fn new(local: Arc<dyn TenantReaders>, peers: Arc<Peers>) -> PeerReaders {
        PeerReaders { local, peers }
    }
}

#[async_trait]
impl TenantReaders for PeerReaders {
    async fn reader(&self, tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError> {
        self.reader_for(tenant, None).await
    }

    async fn reader_for(
        &self,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Arc<dyn SpanReader>, QueryError> {
        self.peers.remote.note_query();
        Ok(Arc::new(ClusterReader {
            local: self.local.reader_for(tenant, credentials).await?,
            peers: Arc::clone(&self.peers),
            tenant: tenant.clone(),
            credentials: credentials.map(str::to_owned),
            warnings: Mutex::new(Vec::new()),
        }))
    }
}

/// The log side of a node with peers: `/api/logs` also searches live
/// peers' log heads (`/internal/logs/head`: what they acknowledged and
/// have not flushed; their flushed blocks this node reads from the
/// bucket), `/api/logs/services` also lists the services of their log
/// records, merged, and a live tail also follows their tails
/// (`/internal/logs/tail`, see `peertail.rs`).
pub struct PeerLogReaders {
    local: Arc<dyn LogTenantReaders>,
    peers: Arc<Peers>,
}

impl PeerLogReaders {
    /// Reads `local`, plus `peers`' log services.
    pub fn new(local: Arc<dyn LogTenantReaders>, peers: Arc<Peers>) -> PeerLogReaders {
        PeerLogReaders { local, peers }
    }
}

#[async_trait]
impl LogTenantReaders for PeerLogReaders {
    async fn log_reader(&self, tenant: &Tenant) -> Result<Arc<dyn LogReader>, QueryError> {
        self.log_reader_for(tenant, None).await
    }

    async fn log_reader_for(
        &self,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Arc<dyn LogReader>, QueryError> {
        self.peers.remote.note_query();
        Ok(Arc::new(ClusterLogReader {
            local: self.local.log_reader_for(tenant, credentials).await?,
            peers: Arc::clone(&self.peers),
            tenant: tenant.clone(),
            credentials: credentials.map(str::to_owned),
            warnings: Mutex::new(Vec::new()),
        }))
    }
}

/// One request's log reader: see [`PeerLogReaders`].
struct ClusterLogReader {
    local: Arc<dyn LogReader>,
    peers: Arc<Peers>,
    tenant: Tenant,
    credentials: Option<String>,
    warnings: Mutex<Vec<String>>,
}

#[async_trait]
impl LogReader for ClusterLogReader {
    /// This node's page merged with every live peer's log head page:
    /// each record once (a peer's head and the block it just flushed may
    /// both hold it), newest first, cut to the limit.
    async fn find_logs(&self, query: &LogQuery) -> Result<LogPage, QueryError> {
        let peers = self.peers.log_head(query, &self.tenant, self.credentials.as_deref());
        let (local, peers) = tokio::join!(self.local.find_logs(query), peers);
        let mut page = local?;
        let Some((found, warnings)) = peers else {
            self.warnings.lock().push(
                "peers' log heads were not asked: the body condition cannot be sent to them".to_owned(),
            );
            return Ok(page);
        };
        self.warnings.lock().extend(warnings);
        merge_log_pages(&mut page, found, query);
        Ok(page)
    }

    async fn log_services(&self) -> Result<Vec<String>, QueryError> {
        let peers = self.peers.listing(
            "log_services",
            LOG_SERVICES_PATH,
            &[],
            &self.tenant,
            self.credentials.as_deref(),
            names,
        );
        let (local, (found, warnings)) = tokio::join!(self.local.log_services(), peers);
        self.warnings.lock().extend(warnings);
        let mut all = local?;
        all.extend(found);
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn subscribe_logs(&self) -> tokio::sync::broadcast::Receiver<Arc<LogBatch>> {
        self.local.subscribe_logs()
    }

    /// Every live peer's tail with `query`, as the caller (see
    /// `peertail.rs`).
    fn subscribe_peer_logs(
        &self,
        query: &LogQuery,
    ) -> Option<tokio::sync::mpsc::Receiver<sightline_model::PeerTailEvent>> {
        Some(crate::peertail::subscribe(
            Arc::clone(&self.peers),
            query,
            self.tenant.clone(),
            self.credentials.clone(),
        ))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }
}

/// Merges `found` (peers' head records) into this node's `page` for
/// `query`: each record once (by its key: time and fingerprint), newest
/// first, at most the query's limit. Peers' records are checked against
/// the whole query again (a peer's window is widened to whole µs).
fn merge_log_pages(page: &mut LogPage, found: Vec<LogRecord>, query: &LogQuery) {
    if found.is_empty() {
        return;
    }
    let limit = query.effective_limit();
    // A peer's full page may have more behind it.
    let peers_full = found.len() >= limit;
    let key = |r: &LogRecord| (r.timestamp(), r.fingerprint());
    let mut keyed: Vec<((u64, u64), LogRecord)> = std::mem::take(&mut page.records)
        .into_iter()
        .chain(found.into_iter().filter(|r| query.matches(r)))
        .map(|r| (key(&r), r))
        .collect();
    keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    // More than a page (or a local page that was cut): there is a next
    // one, starting after the last record kept.
    let more = keyed.len() > limit || page.next.is_some() || peers_full;
    keyed.truncate(limit);
    page.next = match keyed.last() {
        Some(((time, fingerprint), _)) if more => {
            Some(LogCursor { time_unix_nanos: *time, fingerprint: *fingerprint })
        }
        _ => None,
    };
    page.records = keyed.into_iter().map(|(_, r)| r).collect();
}

/// One request's reader: local data plus peers' heads; what peers could
/// not give is collected in `warnings`.
struct ClusterReader {
    local: Arc<dyn SpanReader>,
    peers: Arc<Peers>,
    tenant: Tenant,
    credentials: Option<String>,
    warnings: Mutex<Vec<String>>,
}

impl ClusterReader {
    fn warn(&self, new: Vec<String>) {
        let mut warnings = self.warnings.lock();
        for w in new {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }

    /// Local lookups of `local_ids` and peers' of `peer_ids`, at once.
    async fn lookup(&self, local_ids: &[TraceId], peer_ids: &[TraceId]) -> Result<Vec<Span>, QueryError> {
        let local =
            async { if local_ids.is_empty() { Ok(Vec::new()) } else { self.local.traces(local_ids).await } };
        let peers = self.peers.traces(peer_ids, &self.tenant, self.credentials.as_deref());
        let (local, (mut spans, warnings)) = tokio::join!(local, peers);
        self.warn(warnings);
        spans.extend(local?.into_iter().flatten());
        Ok(spans)
    }
}

/// Spans grouped by trace, each trace deduplicated by span id and sorted
/// by start, as the store returns a trace.
fn by_trace(spans: impl IntoIterator<Item = Span>) -> HashMap<TraceId, Vec<Span>> {
    let mut out: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for span in spans {
        out.entry(span.trace_id).or_default().push(span);
    }
    for spans in out.values_mut() {
        let mut seen = HashSet::with_capacity(spans.len());
        spans.retain(|s| seen.insert(s.span_id));
        spans.sort_by_key(|s| s.start_time_unix_nano);
    }
    out
}

/// The ids of the `limit` traces of `traces` whose latest matching span
/// is newest (ties by id), as a store ranks a search.
fn rank(traces: &HashMap<TraceId, Vec<Span>>, query: &TraceQuery, limit: usize) -> Vec<TraceId> {
    let mut ranked: Vec<(TraceId, u64)> = traces
        .iter()
        .map(|(id, spans)| {
            // A backend may match more loosely than the definition
            // (never more strictly): such a trace keeps its place by its
            // latest span rather than being dropped.
            let starts = |matching: bool| {
                spans
                    .iter()
                    .filter(move |s| !matching || span_matches(s, query))
                    .map(|s| s.start_time_unix_nano)
                    .max()
            };
            (*id, starts(true).or_else(|| starts(false)).unwrap_or(0))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked.into_iter().map(|(id, _)| id).collect()
}

#[async_trait]
impl SpanReader for ClusterReader {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        Ok(self.traces(&[id]).await?.into_iter().next())
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, QueryError> {
        let mut found = by_trace(self.lookup(ids, ids).await?);
        let mut seen = HashSet::with_capacity(ids.len());
        Ok(ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| found.remove(id)).collect())
    }

    /// Local and peers' matches ranked together by their latest matching
    /// span (the store's order), then completed: each trace's spans from
    /// every peer and, for traces only peers found, from local blocks.
    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        let limit = query.effective_limit();
        let peers = self.peers.search(query, &self.tenant, self.credentials.as_deref());
        let (local, (peer_spans, warnings)) = tokio::join!(self.local.find_traces(query), peers);
        self.warn(warnings);
        let local = local?;
        let local_ids: HashSet<TraceId> =
            local.iter().filter_map(|t| t.first()).map(|s| s.trace_id).collect();
        let mut merged = by_trace(local.into_iter().flatten().chain(peer_spans));
        let ids = rank(&merged, query, limit);
        let only_peers: Vec<TraceId> = ids.iter().copied().filter(|id| !local_ids.contains(id)).collect();
        let rest = self.lookup(&only_peers, &ids).await?;
        let mut rest = by_trace(rest);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let mut spans = merged.remove(id)?;
                spans.extend(rest.remove(id).unwrap_or_default());
                by_trace(spans).remove(id)
            })
            .collect())
    }

    /// Local hits and peers' (their heads' matching traces, which are
    /// small) ranked together as [`ClusterReader::find_traces`] ranks
    /// them; [`ClusterReader::traces`] then completes each from everywhere.
    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        let limit = query.effective_limit();
        let peers = self.peers.search(query, &self.tenant, self.credentials.as_deref());
        let (local, (peer_spans, warnings)) = tokio::join!(self.local.find_trace_ids(query), peers);
        self.warn(warnings);
        let mut latest: HashMap<TraceId, u64> =
            local?.into_iter().map(|h| (h.trace_id, h.latest_start_unix_nanos)).collect();
        for (_, spans) in by_trace(peer_spans) {
            if let Some(hit) = TraceHit::of(&spans, query) {
                let start = latest.entry(hit.trace_id).or_insert(0);
                *start = (*start).max(hit.latest_start_unix_nanos);
            }
        }
        Ok(TraceHit::ranked(latest, limit))
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        let peers = self.peers.listing(
            "services",
            SERVICES_PATH,
            &[],
            &self.tenant,
            self.credentials.as_deref(),
            names,
        );
        let (local, (found, warnings)) = tokio::join!(self.local.services(), peers);
        self.warn(warnings);
        let mut all = local?;
        all.extend(found);
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        let mut pairs = vec![("service", service.to_owned())];
        pairs.extend(kind.map(|k| ("spanKind", k.jaeger_name().to_owned())));
        let peers = self.peers.listing(
            "operations",
            OPERATIONS_PATH,
            &pairs,
            &self.tenant,
            self.credentials.as_deref(),
            operations,
        );
        let (local, (found, warnings)) = tokio::join!(self.local.operations(service, kind), peers);
        self.warn(warnings);
        let mut all = local?;
        // A peer filtering by kind lists only that kind; an unspecified
        // kind is "" to Jaeger, so check again rather than trust it.
        all.extend(found.into_iter().filter(|op| kind.is_none_or(|k| op.kind == k)));
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn dependencies(
        &self,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError> {
        self.local.dependencies(end_unix_nanos, lookback_nanos).await
    }

    async fn tag_names(
        &self,
        scope: Option<sightline_model::AttributeScope>,
        query: &sightline_model::TagQuery,
    ) -> Result<sightline_model::TagNames, QueryError> {
        let pairs = tag_pairs(scope, query);
        let peers = self.peers.listing(
            "tag_names",
            TAG_NAMES_PATH,
            &pairs,
            &self.tenant,
            self.credentials.as_deref(),
            scoped_names,
        );
        let (local, (found, warnings)) = tokio::join!(self.local.tag_names(scope, query), peers);
        self.warn(warnings);
        let mut all: TagNames = local?;
        for (scope, names) in found {
            all.entry(scope).or_default().extend(names);
        }
        for names in all.values_mut() {
            names.sort();
            names.dedup();
            names.truncate(query.limit);
        }
        Ok(all)
    }

    async fn tag_values(
        &self,
        scope: Option<sightline_model::AttributeScope>,
        key: &str,
        query: &sightline_model::TagQuery,
    ) -> Result<Vec<sightline_model::Value>, QueryError> {
        let mut pairs = tag_pairs(scope, query);
        pairs.push(("key", key.to_owned()));
        let peers = self.peers.listing(
            "tag_values",
            TAG_VALUES_PATH,
            &pairs,
            &self.tenant,
            self.credentials.as_deref(),
            items,
        );
        let (local, (found, warnings)) = tokio::join!(self.local.tag_values(scope, key, query), peers);
        self.warn(warnings);
        Ok(merge_tag_values(local?.into_iter().chain(found), query.limit))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use sightline_model::{Span, SpanId, SpanKind, TraceId, TraceQuery};

    use super::{by_trace, rank};

    fn span(trace: u8, id: u8, start: u64, name: &str) -> Span {
        let mut t = [0u8; 16];
        t[15] = trace;
        let mut s = [0u8; 8];
        s[7] = id;
        Span::test(TraceId::from_bytes(t).unwrap(), SpanId::from_bytes(s).unwrap(), name)
            .with_kind(SpanKind::Server)
            .with_times(start, start + 1)
    }

    /// A span a peer's head and the local block both hold comes back once;
    /// spans are ordered by start as the store orders a trace.
    #[test]
    fn merged_traces_hold_each_span_once_in_start_order() {
        let local = [span(1, 2, 20, "b"), span(1, 1, 10, "a")];
        let peer = [span(1, 1, 10, "a"), span(1, 3, 30, "c"), span(2, 1, 5, "x")];
        let merged = by_trace(local.into_iter().chain(peer));
        let one: Vec<u8> =
            merged[&span(1, 9, 0, "").trace_id].iter().map(|s| s.span_id.as_bytes()[7]).collect();
        assert_eq!(one, [1, 2, 3]);
        assert_eq!(merged[&span(2, 9, 0, "").trace_id].len(), 1);
    }

    /// Traces from all nodes are ranked together by their latest matching
    /// span, not by who found them, and cut to the limit.
    #[test]
    fn searches_rank_by_the_latest_matching_span() {
        let spans =
            [span(1, 1, 100, "hit"), span(1, 2, 900, "other"), span(2, 1, 200, "hit"), span(3, 1, 50, "hit")];
        let merged = by_trace(spans);
        let query = TraceQuery { operation: Some("hit".into()), limit: 2, ..TraceQuery::default() };
        let ids: Vec<u8> = rank(&merged, &query, 2).iter().map(|t| t.as_bytes()[15]).collect();
        assert_eq!(ids, [2, 1], "trace 1's newest span does not match: it ranks by its match at 100");
        // A trace no span of which matches (a looser backend) keeps its
        // place by its newest span instead of vanishing.
        let loose = TraceQuery { operation: Some("nothing".into()), limit: 5, ..TraceQuery::default() };
        assert_eq!(rank(&merged, &loose, 5).len(), 3);
    }

    fn record(time: u64, body: &str) -> sightline_model::LogRecord {
        sightline_model::LogRecord::info(time, body)
    }

    fn times(page: &sightline_model::LogPage) -> Vec<u64> {
        page.records.iter().map(|r| r.time_unix_nano).collect()
    }

    #[test]
    fn peers_log_records_merge_newest_first_each_once_up_to_the_limit() {
        use sightline_model::{LogPage, LogQuery};
        let query = LogQuery { limit: 3, ..LogQuery::default() };
        // Local: a block record (10) and a head record (30); a peer: the
        // same 30 (its head and the block it just became) and two more.
        let mut page = LogPage { records: vec![record(30, "a"), record(10, "b")], ..LogPage::default() };
        let found = vec![record(40, "c"), record(30, "a"), record(20, "d")];
        super::merge_log_pages(&mut page, found, &query);
        assert_eq!(times(&page), [40, 30, 20]);
        let next = page.next.expect("10 is left for the next page");
        assert_eq!(next.time_unix_nanos, 20);
        // The next page: only what is after the cursor.
        let query = LogQuery { after: Some(next), ..query };
        let mut page = LogPage { records: vec![record(10, "b")], ..LogPage::default() };
        super::merge_log_pages(&mut page, vec![record(40, "c")], &query);
        assert_eq!(times(&page), [10], "a peer's record before the cursor is not repeated");
        assert!(page.next.is_none());
        // A peer's record outside the window is dropped too.
        let query = LogQuery { start_unix_nanos: Some(15), limit: 3, ..LogQuery::default() };
        let mut page = LogPage::default();
        super::merge_log_pages(&mut page, vec![record(10, "x"), record(16, "y")], &query);
        assert_eq!(times(&page), [16]);
    }
}
