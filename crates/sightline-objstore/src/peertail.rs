//! A live log tail that follows every live peer's tail too.
//!
//! Logs are kept by the node that received them, so behind a load
//! balancer a tail of one node sees only its share. The node serving a
//! tail therefore subscribes to each live peer's own tail
//! (`/internal/logs/tail` in `sightline-api`, as the caller: same tenant,
//! same `Authorization`, the tail's filters) and hands the records to the
//! client's stream beside its own ([`PeerTailEvent`]).
//!
//! - Peers are re-listed every [`REFRESH`]: a node that joins is followed
//!   from then on; one that leaves stops being retried.
//! - Each peer is read by its own task, so a slow or dead peer never
//!   holds up the local records or another peer's. A peer that sends no
//!   frame (it sends keep-alives) within [`read_timeout`] is taken as
//!   dead.
//! - A peer whose tail ends or cannot start is reported once
//!   ([`PeerTailEvent::Lost`]) and retried every [`RETRY`] while it stays
//!   a peer; [`PeerTailEvent::Connected`] says when it is followed again.
//! - Everything stops when the client's stream drops the receiver: the
//!   tasks live in a `JoinSet` that the supervisor owns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sightline_model::{
    LogBatch, LogQuery, PeerTailEvent, TAIL_KEEPALIVE, TailFrame, TailFrameReader, Tenant,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::peers::{Peer, PeerRequest, Peers, describe};

/// Where a node serves its own tail (`sightline-api`'s internal routes).
const LOG_TAIL_PATH: &str = "/internal/logs/tail";
/// How often the peer list is read again.
const REFRESH: Duration = Duration::from_secs(1);
/// How long after a peer's tail ended it is asked again.
const RETRY: Duration = Duration::from_secs(2);
/// Events buffered for the client's stream; a full buffer holds the peer
/// tasks back, and so the peers' answers (a peer ends a tail that falls
/// too far behind and says so).
const BUFFER: usize = 64;

/// How long a tail read may wait for a peer's next frame: a few keep-alive
/// intervals, and never less than the peer timeout.
pub(crate) fn read_timeout(peer_timeout: Duration) -> Duration {
    (TAIL_KEEPALIVE * 3).max(peer_timeout)
}

/// Starts following every live peer's tail for `query`; the events arrive
/// on the returned receiver until it is dropped.
pub(crate) fn subscribe(
    peers: Arc<Peers>,
    query: &LogQuery,
    tenant: Tenant,
    credentials: Option<String>,
) -> mpsc::Receiver<PeerTailEvent> {
    // A body condition that cannot be sent: peers send every record and
    // the client's stream filters them (it checks every record anyway).
    let pairs = query.to_pairs().unwrap_or_default();
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let (tx, rx) = mpsc::channel(BUFFER);
    let ask = Arc::new(Ask { peers, query: encoded, tenant, credentials });
    tokio::spawn(supervise(ask, tx));
    rx
}

/// What every peer is asked, and by whom.
struct Ask {
    peers: Arc<Peers>,
    query: String,
    tenant: Tenant,
    credentials: Option<String>,
}

/// How one peer's tail ended.
struct Ended {
    peer: Peer,
    /// Whether it had been subscribed (then its end is always news).
    connected: bool,
    why: String,
}

/// Starts a task per listed peer, restarts ended ones after [`RETRY`],
/// reports each loss once; returns when the client is gone (dropping the
/// tasks).
async fn supervise(ask: Arc<Ask>, tx: mpsc::Sender<PeerTailEvent>) {
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    // Peers whose loss the client was told of and that are not back.
    let mut lost: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = tick.tick() => {
                let now = Instant::now();
                for peer in ask.peers.list() {
                    if running.contains(&peer.addr) || not_before.get(&peer.addr).is_some_and(|t| *t > now) {
                        continue;
                    }
                    running.insert(peer.addr.clone());
                    tasks.spawn(follow(Arc::clone(&ask), peer, tx.clone()));
                }
            }
            Some(done) = tasks.join_next() => {
                // A task only stops early by panicking: its peer is then
                // not restarted (`running` keeps it).
                let Ok(ended) = done else { continue };
                running.remove(&ended.peer.addr);
                not_before.insert(ended.peer.addr.clone(), Instant::now() + RETRY);
                if ended.connected || lost.insert(ended.peer.addr.clone()) {
                    lost.insert(ended.peer.addr.clone());
                    tracing::debug!(peer = %ended.peer.name, why = %ended.why, "peer's log tail lost");
                    let event = PeerTailEvent::Lost { peer: ended.peer.name, reason: ended.why };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Follows `peer`'s tail until it ends (or the client is gone).
async fn follow(ask: Arc<Ask>, peer: Peer, tx: mpsc::Sender<PeerTailEvent>) -> Ended {
    let peers = &ask.peers;
    let ended = |connected: bool, why: String| Ended { peer: peer.clone(), connected, why };
    let request = peers.request(
        &peers.stream_client,
        &peer,
        LOG_TAIL_PATH,
        &ask.query,
        &ask.tenant,
        ask.credentials.as_deref(),
    );
    let count = |outcome: &'static str| {
        peers.metrics.peer_requests.get_or_create(&PeerRequest { op: "log_tail", outcome }).inc();
    };
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            count(if e.is_timeout() { "timeout" } else { "error" });
            return ended(false, describe(&e));
        }
    };
    let status = response.status();
    if !status.is_success() {
        count("error");
        let body = response.chunk().await.ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned();
        return ended(false, format!("HTTP {}: {text}", status.as_u16()));
    }
    count("ok");
    // The peer subscribed before answering: what it acknowledges from
    // here on is in this answer.
    if tx.send(PeerTailEvent::Connected { peer: peer.name.clone() }).await.is_err() {
        return ended(true, "the client is gone".into());
    }
    let mut frames = TailFrameReader::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return ended(true, "its answer ended".into()),
            Err(e) if e.is_timeout() => {
                return ended(
                    true,
                    format!("nothing from it within {:?}", read_timeout(peers.options.timeout)),
                );
            }
            Err(e) => return ended(true, describe(&e)),
        };
        frames.push(&chunk);
        loop {
            match frames.next_frame() {
                Ok(None) => break,
                Ok(Some(TailFrame::KeepAlive)) => {}
                Ok(Some(TailFrame::Records(records))) => {
                    if records.is_empty() {
                        continue;
                    }
                    let batch = Arc::new(LogBatch::from_records(records));
                    if tx.send(PeerTailEvent::Records(batch)).await.is_err() {
                        return ended(true, "the client is gone".into());
                    }
                }
                Ok(Some(TailFrame::End(why))) => return ended(true, format!("it ended the tail: {why}")),
                Err(e) => return ended(true, e.to_string()),
            }
        }
    }
}
