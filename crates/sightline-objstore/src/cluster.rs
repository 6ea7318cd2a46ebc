//! The node's background duties toward the bucket: a heartbeat (so
//! `/health` can say which nodes share it), the compaction lease, and, while
//! holding it, deleting blocks whose grace period has passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use object_store::PutMode;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::bucket::Bucket;
use crate::lease::Lease;
use crate::storage::ObjectStorage;

const NODES_PREFIX: &str = "_cluster/nodes/";

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) bucket: Arc<Bucket>,
    pub(crate) node: String,
    pub(crate) lease: Arc<Lease>,
    /// Every tenant's block storage this node has open: the lease holder
    /// cleans up after all of them.
    pub(crate) storages: Mutex<Vec<Arc<ObjectStorage>>>,
    /// Blocks dropped longer ago than this are deleted.
    pub(crate) grace: Duration,
    /// Nodes whose heartbeat is recent, as last listed.
    pub(crate) nodes: Mutex<BTreeSet<String>>,
    /// Where this node's query API answers other nodes (`HOST:PORT`),
    /// written into its heartbeat; `None` advertises nothing.
    pub(crate) advertise: Option<String>,
    /// The other live nodes' advertised addresses, as last read from
    /// their heartbeats: node id → `HOST:PORT`. A watch, so live log tails
    /// (`peertail.rs`) wake when it changes rather than polling it.
    pub(crate) peers: watch::Sender<BTreeMap<String, String>>,
    /// Where the lease holder replays dead nodes' WAL copies (the lossless
    /// mode, `walmirror.rs`).
    pub(crate) wal_replay: Mutex<Option<crate::walmirror::ReplaySink>>,
    /// `Some` in the lossless mode: how long a node must look dead first.
    pub(crate) wal_replay_after: Option<Duration>,
}

impl Cluster {
    /// Heartbeat, lease, clean-up, every lease renewal interval until
    /// `stop` turns true.
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = self.lease.renew_interval();
        // Clean-up lists the tenant's blocks: not on every lease tick.
        let collect_every = (self.grace / 4).max(interval);
        let mut collected: Option<Instant> = None;
        loop {
            self.heartbeat(interval).await;
            match self.lease.tick().await {
                Ok(held) => {
                    self.bucket.metrics.lease_held.set(i64::from(held));
                }
                Err(e) => tracing::warn!(error = %e, "renewing the compaction lease failed; will retry"),
            }
            if self.lease.held() && collected.is_none_or(|t| t.elapsed() >= collect_every) {
                collected = Some(Instant::now());
                let storages = self.storages.lock().clone();
                for storage in storages {
                    if let Err(e) = storage.collect_garbage(self.grace).await {
                        tracing::warn!(error = %e, "deleting dropped blocks failed; will retry");
                    }
                }
            }
            if self.lease.held() {
                self.replay_dead_nodes().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The lossless mode's lease-holder duty: replays the WAL copies of
    /// nodes that stay dead, for every tenant (see `walmirror.rs`).
    async fn replay_dead_nodes(&self) {
        let Some(after) = self.wal_replay_after else { return };
        let Some(sink) = self.wal_replay.lock().clone() else { return };
        let storages = self.storages.lock().clone();
        for storage in storages {
            match crate::walmirror::replay_dead(&self.bucket, &storage, &self.node, after, sink.0.as_ref())
                .await
            {
                Ok(done) if done.objects > 0 => tracing::info!(
                    tenant = storage.tenant(),
                    copies = done.objects,
                    spans = done.spans,
                    bad = done.bad,
                    "replayed dead nodes' WAL copies"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "replaying dead nodes' WAL copies failed; will retry"),
            }
        }
    }

    /// Writes this node's heartbeat and lists the others: a node counts
    /// while its heartbeat is at most three intervals older than this one's
    /// (both times from the store's clock).
    async fn heartbeat(&self, interval: Duration) {
        let key = format!("{NODES_PREFIX}{}.json", self.node);
        let body = serde_json::json!({ "node": self.node, "addr": self.advertise }).to_string();
        if let Err(e) = self.bucket.put(&key, Bytes::from(body), PutMode::Overwrite).await {
            tracing::warn!(error = %e, "writing the heartbeat failed");
            return;
        }
        let listed = match self.bucket.list(NODES_PREFIX).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "listing the nodes failed");
                return;
            }
        };
        let own = listed.iter().find(|(k, _)| *k == key).map(|(_, m)| SystemTime::from(m.last_modified));
        let Some(own) = own else { return };
        let nodes: BTreeSet<String> = listed
            .iter()
            .filter(|(_, m)| {
                own.duration_since(SystemTime::from(m.last_modified)).map_or(true, |age| age <= interval * 3)
            })
            .filter_map(|(k, _)| k.strip_prefix(NODES_PREFIX)?.strip_suffix(".json").map(str::to_owned))
            .collect();
        self.bucket.metrics.nodes.set(nodes.len() as i64);
        // Each other live node's address, read from its heartbeat every
        // round (one GET per node): a restarted node may listen elsewhere.
        let known = self.peers.borrow().clone();
        let mut peers = BTreeMap::new();
        for node in nodes.iter().filter(|n| **n != self.node) {
            match self.bucket.get(&format!("{NODES_PREFIX}{node}.json")).await {
                Ok(Some(object)) => {
                    let addr = serde_json::from_slice::<serde_json::Value>(&object.bytes)
                        .ok()
                        .and_then(|v| v["addr"].as_str().map(str::to_owned));
                    if let Some(addr) = addr {
                        peers.insert(node.clone(), addr);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, %node, "reading a node's heartbeat failed; keeping its last address");
                    if let Some(addr) = known.get(node) {
                        peers.insert(node.clone(), addr.clone());
                    }
                }
            }
        }
        // Watchers wake only when the set changes, not every round.
        self.peers.send_if_modified(|old| {
            let changed = *old != peers;
            *old = peers;
            changed
        });
        *self.nodes.lock() = nodes;
    }
}
