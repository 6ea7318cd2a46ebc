//! A live log tail that follows every live peer's tail too.
//!
//! Logs are kept by the node that received them, so behind a load
//! balancer a tail of one node sees only its share. The node serving a
//! tail therefore subscribes to each live peer's own tail
//! (`/internal/logs/tail` in `sightline-api`, as the caller: same tenant,
//! same `Authorization`, the tail's filters) and hands the records to the
//! client's stream beside its own ([`PeerTailEvent`]).
//!
//! - Peers are re-listed when the peer list changes (a heartbeat round
//!   that finds a node joined or gone wakes the tail), when a peer's tail
//!   ends and when a retry is due: a node that joins is followed from then
//!   on; one that leaves stops being retried. Nothing wakes a tail on a
//!   node without peers.
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
    let ask = Arc::new(Ask {
        peers,
        query: encoded,
        tenant,
        credentials,
        #[cfg(test)]
        rounds: Default::default(),
    });
    tokio::spawn(supervise(ask, tx));
    rx
}

/// What every peer is asked, and by whom.
struct Ask {
    peers: Arc<Peers>,
    query: String,
    tenant: Tenant,
    credentials: Option<String>,
    /// How often the supervisor has read the peer list.
    #[cfg(test)]
    rounds: std::sync::atomic::AtomicUsize,
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
/// tasks). Sleeps until the peer list changes, a task ends or a retry is
/// due: never on a timer of its own.
async fn supervise(ask: Arc<Ask>, tx: mpsc::Sender<PeerTailEvent>) {
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    // Peers whose loss the client was told of and that are not back.
    let mut lost: HashSet<String> = HashSet::new();
    let mut changes = Some(ask.peers.changes());
    loop {
        #[cfg(test)]
        ask.rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let listed = ask.peers.list();
        // Peers that left are forgotten: one that comes back starts afresh.
        not_before.retain(|addr, _| listed.iter().any(|p| p.addr == *addr));
        let mut retry_at: Option<Instant> = None;
        for peer in listed {
            if running.contains(&peer.addr) {
                continue;
            }
            if let Some(at) = not_before.get(&peer.addr).filter(|at| **at > now) {
                retry_at = Some(retry_at.map_or(*at, |r| r.min(*at)));
                continue;
            }
            running.insert(peer.addr.clone());
            tasks.spawn(follow(Arc::clone(&ask), peer, tx.clone()));
        }
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let changed = async {
            match &mut changes {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tx.closed() => return,
            () = retry => {}
            watching = changed => {
                // The node's cluster task is gone: the list stays as it is.
                if !watching {
                    changes = None;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use object_store::memory::InMemory;

    use super::*;
    use crate::{Options, PeerOptions, Remote};

    async fn peers(dir: &std::path::Path) -> Arc<Peers> {
        let options = Options::new("memory://tail", "n1", dir);
        let remote =
            Remote::open_store(Arc::new(InMemory::new()), "", options, Arc::default()).await.unwrap();
        let options = PeerOptions {
            static_peers: Vec::new(),
            own: None,
            timeout: Duration::from_secs(2),
            https: false,
            ca_pem: None,
            identity_pem: None,
        };
        Arc::new(Peers::new(Arc::new(remote), options).unwrap())
    }

    fn ask(peers: Arc<Peers>) -> Arc<Ask> {
        Arc::new(Ask {
            peers,
            query: String::new(),
            tenant: Tenant::default(),
            credentials: None,
            rounds: Default::default(),
        })
    }

    /// A tail on a node without peers reads the list once and then sleeps:
    /// a minute of (paused, auto-advanced) time wakes it no more.
    #[tokio::test(start_paused = true)]
    async fn without_peers_the_supervisor_sleeps_until_the_list_changes() {
        let dir = tempfile::tempdir().unwrap();
        let peers = peers(dir.path()).await;
        let ask = ask(Arc::clone(&peers));
        let (tx, mut rx) = mpsc::channel(BUFFER);
        let supervisor = tokio::spawn(supervise(Arc::clone(&ask), tx));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(ask.rounds.load(Ordering::Relaxed), 1);

        // A node joins: the supervisor wakes and follows it (here a port
        // nobody listens on, so its tail is reported lost).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        peers.remote.cluster.peers.send_replace([("n2".to_owned(), addr.clone())].into());
        match rx.recv().await {
            Some(PeerTailEvent::Lost { peer, .. }) => assert_eq!(peer, format!("n2 at {addr}")),
            other => panic!("expected the joined peer's loss, got {other:?}"),
        }
        assert!(ask.rounds.load(Ordering::Relaxed) >= 2);
        drop(rx);
        supervisor.await.unwrap();
    }
}
