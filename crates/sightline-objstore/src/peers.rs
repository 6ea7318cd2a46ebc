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
//! What reads peers: traces by id and searches. Listings (services,
//! operations, dependencies, tags) stay local: they are hints for a UI's
//! drop-downs, and a peer's newest names reach them with its next flush.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use sightline_model::{
    DependencyLink, Operation, QueryError, Span, SpanKind, SpanReader, Tenant, TenantReaders, TraceId,
    TraceQuery, span_matches,
};

use crate::{Metrics, Remote};

/// Where a node answers for its heads (`sightline-api`'s internal routes).
const TRACES_PATH: &str = "/internal/head/traces";
const SEARCH_PATH: &str = "/internal/head/search";
/// The most a peer's answer may be: far above what its per-query result
/// budget lets it build, so only a broken peer hits it.
const MAX_ANSWER_BYTES: usize = 256 << 20;
/// Trace ids per lookup request (keeps the URL short).
const IDS_PER_REQUEST: usize = 100;

/// Labels of a peer request count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerRequest {
    /// `traces` or `search`.
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
}

/// One peer: how a warning names it, and where it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    name: String,
    addr: String,
}

/// The live peers and a client to ask them. See the module docs.
#[derive(Debug)]
pub struct Peers {
    client: reqwest::Client,
    remote: Arc<Remote>,
    options: PeerOptions,
    metrics: Arc<Metrics>,
}

impl Peers {
    /// Peers from `remote`'s heartbeats and `options.static_peers`.
    pub fn new(remote: Arc<Remote>, options: PeerOptions) -> Result<Peers, crate::Error> {
        let metrics = Arc::clone(&remote.cluster.bucket.metrics);
        crate::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| crate::Error::InvalidUrl { url: "peers".into(), why: e.to_string() })?;
        Ok(Peers { client, remote, options, metrics })
    }

    /// The peers to ask now: the static list, then discovered nodes (a
    /// discovered node at a listed address is named by its node id).
    fn list(&self) -> Vec<Peer> {
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

    /// Asks `peer` for `path?query`; its spans, or why not.
    async fn ask(
        &self,
        peer: &Peer,
        op: &'static str,
        path: &str,
        query: String,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Vec<Span>, String> {
        let scheme = if self.options.https { "https" } else { "http" };
        let mut request = self.client.get(format!("{scheme}://{}{path}?{query}", peer.addr));
        if !tenant.is_default() {
            request = request.header("X-Scope-OrgID", tenant.as_str());
        }
        if let Some(credentials) = credentials {
            request = request.header(reqwest::header::AUTHORIZATION, credentials);
        }
        let result = self.fetch(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err((true, _)) => "timeout",
            Err((false, _)) => "error",
        };
        self.metrics.peer_requests.get_or_create(&PeerRequest { op, outcome }).inc();
        result.map_err(|(_, why)| why)
    }

    /// Sends `request` and decodes the answer; `Err((timed out, why))`.
    async fn fetch(&self, request: reqwest::RequestBuilder) -> Result<Vec<Span>, (bool, String)> {
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
        let decoded = sightline_model::otlp::decode_protobuf(&body)
            .map_err(|e| (false, format!("undecodable answer: {e}")))?;
        Ok(decoded.spans)
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
        self.fan_out("traces", TRACES_PATH, &queries, tenant, credentials).await
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
        self.fan_out("search", SEARCH_PATH, &[encoded], tenant, credentials).await
    }

    /// Each of `queries` to every peer at once; a peer failing any of them
    /// is named once.
    async fn fan_out(
        &self,
        op: &'static str,
        path: &str,
        queries: &[String],
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> (Vec<Span>, Vec<String>) {
        let peers = self.list();
        let asks = peers.iter().map(|peer| async move {
            let mut spans = Vec::new();
            for query in queries {
                match self.ask(peer, op, path, query.clone(), tenant, credentials).await {
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

/// An error with its causes: reqwest's own message ("error sending request
/// for url") says little without them.
fn describe(e: &dyn std::error::Error) -> String {
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
        Ok(Arc::new(ClusterReader {
            local: self.local.reader_for(tenant, credentials).await?,
            peers: Arc::clone(&self.peers),
            tenant: tenant.clone(),
            credentials: credentials.map(str::to_owned),
            warnings: Mutex::new(Vec::new()),
        }))
    }
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
        let mut ranked: Vec<(TraceId, u64)> = merged
            .iter()
            .filter_map(|(id, spans)| {
                let latest =
                    spans.iter().filter(|s| span_matches(s, query)).map(|s| s.start_time_unix_nano).max()?;
                Some((*id, latest))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        let ids: Vec<TraceId> = ranked.iter().map(|(id, _)| *id).collect();
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

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        self.local.services().await
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        self.local.operations(service, kind).await
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
        self.local.tag_names(scope, query).await
    }

    async fn tag_values(
        &self,
        scope: Option<sightline_model::AttributeScope>,
        key: &str,
        query: &sightline_model::TagQuery,
    ) -> Result<Vec<sightline_model::Value>, QueryError> {
        self.local.tag_values(scope, key, query).await
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }
}
