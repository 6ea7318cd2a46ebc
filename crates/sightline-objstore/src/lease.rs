//! The compaction lease: one object, `_cluster/compactor.lease`, naming
//! the node that merges blocks, applies retention and deletes dropped
//! blocks, and until when.
//!
//! It is taken by a conditional create (`If-None-Match: *`) or, once
//! expired, by a conditional replace of the version read (`If-Match`), and
//! renewed the same way, so of two nodes trying at once one wins. The
//! holder trusts it for half the TTL from the moment it asked (clocks of
//! different nodes may disagree a little); a holder that stops renewing —
//! killed, partitioned, stuck — loses it after the TTL and another node
//! takes over.
//!
//! Nothing depends on the lease for correctness: a merge commits only if
//! all its inputs are still listed (the manifest's compare-and-swap), so a
//! stale holder's merge fails rather than duplicating spans. The lease
//! only keeps nodes from doing the same work twice.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::PutMode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bucket::{Bucket, Put};

/// Key of the lease object.
pub(crate) const LEASE_KEY: &str = "_cluster/compactor.lease";

/// The lease object's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LeaseDoc {
    holder: String,
    expires_unix_ms: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Lease {
    bucket: Arc<Bucket>,
    node: String,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// While held: the ETag of our version and until when we trust it.
    held: Option<(String, Instant)>,
    /// The holder as last seen.
    holder: Option<String>,
}

impl Lease {
    /// The lease as seen by `node`; nothing is requested until
    /// [`Lease::tick`].
    pub fn new(bucket: Arc<Bucket>, node: String, ttl: Duration) -> Lease {
        Lease { bucket, node, ttl, state: Mutex::new(State::default()) }
    }

    /// Whether this node holds the lease now.
    pub fn held(&self) -> bool {
        self.state.lock().held.as_ref().is_some_and(|(_, until)| Instant::now() < *until)
    }

    /// The holder as last seen (this node's id while it holds it).
    pub fn holder(&self) -> Option<String> {
        self.state.lock().holder.clone()
    }

    /// How often [`Lease::tick`] should run: well within the TTL, so one
    /// failed renewal does not lose the lease.
    pub fn renew_interval(&self) -> Duration {
        self.ttl / 4
    }

    fn doc(&self, expires_unix_ms: u64) -> Bytes {
        let doc = LeaseDoc { holder: self.node.clone(), expires_unix_ms };
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// Renews the lease if this node holds it, takes it if it is free or
    /// expired (or this node's from before a restart); returns whether
    /// this node holds it now.
    pub async fn tick(&self) -> Result<bool, Error> {
        let asked = Instant::now();
        let expires = unix_ms().saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        let trust_until = asked + self.ttl / 2;
        let held = self.state.lock().held.clone();
        if let Some((e_tag, _)) = held {
            match self.bucket.put(LEASE_KEY, self.doc(expires), Bucket::update(&e_tag)).await {
                Ok(Put::Done(Some(e_tag))) => {
                    self.state.lock().held = Some((e_tag, trust_until));
                    return Ok(true);
                }
                Ok(_) => {
                    tracing::warn!(node = %self.node, "lost the compaction lease (another node took it)");
                    self.state.lock().held = None;
                }
                Err(e) => {
                    // Keep trusting it until `trust_until`; the next tick
                    // tries again.
                    return Err(e);
                }
            }
        }
        let current = self.bucket.get(LEASE_KEY).await?;
        let mode = match &current {
            None => PutMode::Create,
            Some(object) => {
                let doc: Option<LeaseDoc> = serde_json::from_slice(&object.bytes).ok();
                let free =
                    doc.as_ref().is_none_or(|d| d.holder == self.node || d.expires_unix_ms < unix_ms());
                if !free {
                    self.state.lock().holder = doc.map(|d| d.holder);
                    return Ok(false);
                }
                match &object.e_tag {
                    Some(e_tag) => Bucket::update(e_tag),
                    None => return Ok(false),
                }
            }
        };
        match self.bucket.put(LEASE_KEY, self.doc(expires), mode).await? {
            Put::Done(Some(e_tag)) => {
                tracing::info!(node = %self.node, "took the compaction lease");
                let mut state = self.state.lock();
                state.held = Some((e_tag, trust_until));
                state.holder = Some(self.node.clone());
                Ok(true)
            }
            Put::Done(None) | Put::Lost => Ok(false),
        }
    }

    /// Gives the lease up (at shutdown), so another node takes over at
    /// once instead of after the TTL.
    pub async fn release(&self) {
        let held = self.state.lock().held.take();
        if let Some((e_tag, _)) = held {
            let _ = self.bucket.put(LEASE_KEY, self.doc(0), Bucket::update(&e_tag)).await;
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
