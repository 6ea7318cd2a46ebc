//! The lossless mode (`--durability bucket`): every trace WAL group commit
//! is also written to the bucket before it is acknowledged, and the lease
//! holder replays the copies of a node that stays dead.
//!
//! Layout: `<tenant>/_wal/<node>/<segment>-<offset>`, both numbers
//! zero-padded to 20 digits so names sort in WAL order; each object is a
//! segment image (header plus the round's checksummed records, see
//! `sightline_wal::Mirror`), written with `If-None-Match: *` so nothing is
//! ever overwritten. A node deletes its copies of the segments a flush
//! covered once the manifest lists the block (`Wal::remove_through`).
//!
//! Replay: a node is dead for this purpose when its heartbeat and its
//! newest copy are both older than `replay_after` (by the bucket's clock).
//! The lease holder then feeds the dead node's copies, in WAL order, into
//! its own store as if they had just arrived (its WAL, its head, its next
//! flush), and deletes each copy once its records are acknowledged there.
//! Copies of segments below the dead node's replay point in the manifest
//! are already in blocks and are only deleted, so a node killed between
//! its flush and the deletion of its copies is not counted twice. A copy
//! that does not read back (torn, damaged, not this format) is counted,
//! logged and deleted after its valid records are replayed; a record that
//! is not OTLP is counted and skipped. Nothing here panics on bucket
//! content.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::PutMode;
use sightline_model::{Batch, Tenant, TracesConsumer};
use sightline_wal::{Mirror, RecoveryMode, SegmentId};

use crate::Error;
use crate::bucket::{Bucket, Put};
use crate::storage::ObjectStorage;

/// The folder under a tenant's prefix that holds every node's copies.
const WAL_DIR: &str = "_wal";

/// Heartbeats, as `cluster.rs` writes them.
const NODES_PREFIX: &str = "_cluster/nodes/";

/// The prefix of `node`'s copies for `tenant`.
fn node_prefix(tenant: &str, node: &str) -> String {
    format!("{tenant}/{WAL_DIR}/{node}/")
}

fn object_name(segment: SegmentId, offset: u64) -> String {
    format!("{:020}-{offset:020}", segment.0)
}

/// `(segment, offset)` of a copy's name; `None` for anything else.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (segment, offset) = name.split_once('-')?;
    Some((segment.parse().ok()?, offset.parse().ok()?))
}

/// Where replayed batches go (the binary's tenant router).
#[derive(Clone)]
pub(crate) struct ReplaySink(pub(crate) Arc<dyn TracesConsumer>);

impl std::fmt::Debug for ReplaySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplaySink")
    }
}

/// One node's WAL copies for one tenant: the store's [`Mirror`].
#[derive(Debug)]
pub(crate) struct WalMirror {
    bucket: Arc<Bucket>,
    prefix: String,
}

impl WalMirror {
    pub(crate) fn new(bucket: Arc<Bucket>, tenant: &str, node: &str) -> WalMirror {
        WalMirror { bucket, prefix: node_prefix(tenant, node) }
    }
}

impl Mirror for WalMirror {
    fn put(&self, segment: SegmentId, offset: u64, image: &[u8]) -> Result<(), String> {
        let key = format!("{}{}", self.prefix, object_name(segment, offset));
        let body = Bytes::copy_from_slice(image);
        match self.bucket.wait(self.bucket.put(&key, body, PutMode::Create)) {
            Ok(Put::Done(_)) => Ok(()),
            // Never overwritten: segment ids only grow for a node id, so an
            // existing copy is an earlier attempt or another process
            // posing as this node. Either way this round is not known to
            // be copied.
            Ok(Put::Lost) => Err(format!("{} exists already", self.bucket.location(&key))),
            Err(e) => Err(e.to_string()),
        }
    }

    fn remove_through(&self, through: SegmentId) {
        let bucket = Arc::clone(&self.bucket);
        let prefix = self.prefix.clone();
        bucket.runtime().clone().spawn(async move {
            if let Err(e) = delete_through(&bucket, &prefix, through.0).await {
                // Left for the next flush's deletion (or the lease holder).
                tracing::warn!(error = %e, "deleting WAL copies a flush covered failed; will retry");
            }
        });
    }
}

/// Deletes the copies under `prefix` of segments `<= through`.
async fn delete_through(bucket: &Bucket, prefix: &str, through: u64) -> Result<usize, Error> {
    let mut deleted = 0;
    for (key, _) in bucket.list(prefix).await? {
        let name = key.strip_prefix(prefix).unwrap_or(&key);
        if parse_name(name).is_some_and(|(segment, _)| segment <= through) {
            bucket.delete(&key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// A copy's `(segment, offset, key)`: sorts in WAL order.
type CopyRef = (u64, u64, String);

/// What one replay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    pub(crate) objects: usize,
    pub(crate) spans: u64,
    pub(crate) bad: u64,
}

/// The lease holder's round for one tenant: replays the copies of every
/// dead node other than `own` into `sink`, then deletes them.
pub(crate) async fn replay_dead(
    bucket: &Bucket,
    storage: &ObjectStorage,
    own: &str,
    replay_after: Duration,
    sink: &dyn TracesConsumer,
) -> Result<Replayed, Error> {
    let tenant = storage.tenant().to_owned();
    let root = format!("{tenant}/{WAL_DIR}/");
    let listed = bucket.list(&root).await?;
    if listed.is_empty() {
        return Ok(Replayed::default());
    }
    let heartbeats: BTreeMap<String, SystemTime> = bucket
        .list(NODES_PREFIX)
        .await?
        .into_iter()
        .filter_map(|(k, m)| {
            let node = k.strip_prefix(NODES_PREFIX)?.strip_suffix(".json")?.to_owned();
            Some((node, SystemTime::from(m.last_modified)))
        })
        .collect();
    // The bucket's clock, not ours: our own heartbeat's time.
    let Some(now) = heartbeats.get(own).copied() else { return Ok(Replayed::default()) };
    let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age > replay_after);

    // node -> (segment, offset, key), and its newest copy's time.
    let mut by_node: BTreeMap<String, (Vec<CopyRef>, SystemTime)> = BTreeMap::new();
    for (key, meta) in listed {
        let Some((node, name)) = key.strip_prefix(&root).and_then(|rest| rest.split_once('/')) else {
            continue;
        };
        let Some((segment, offset)) = parse_name(name) else { continue };
        let modified = SystemTime::from(meta.last_modified);
        let entry = by_node.entry(node.to_owned()).or_insert_with(|| (Vec::new(), modified));
        entry.1 = entry.1.max(modified);
        entry.0.push((segment, offset, key.clone()));
    }
    let mut done = Replayed::default();
    for (node, (mut copies, newest)) in by_node {
        if node == own || !old(newest) || !heartbeats.get(&node).copied().is_none_or(old) {
            continue;
        }
        let replay_from = storage.replay_point(&node).await?;
        copies.sort();
        tracing::warn!(
            %node, %tenant, copies = copies.len(),
            "node is gone (no heartbeat and no WAL copy for longer than the replay delay); replaying its WAL copies"
        );
        for (segment, _, key) in copies {
            if segment >= replay_from {
                replay_object(bucket, &key, &tenant, sink, &mut done).await?;
            }
            bucket.delete(&key).await?;
            done.objects += 1;
        }
    }
    Ok(done)
}

/// Feeds one copy's records into `sink`; an error stops the round before
/// the copy is deleted, so the next round tries it again.
async fn replay_object(
    bucket: &Bucket,
    key: &str,
    tenant: &str,
    sink: &dyn TracesConsumer,
    done: &mut Replayed,
) -> Result<(), Error> {
    let Some(object) = bucket.get(key).await? else { return Ok(()) };
    let scanned = match sightline_wal::scan_segment(&object.bytes, true, RecoveryMode::SkipDamaged) {
        Ok(scanned) => scanned,
        Err(e) => {
            tracing::error!(copy = %bucket.location(key), error = %e, "a WAL copy is unreadable; skipped");
            done.bad += 1;
            bucket.metrics.wal_copies_bad.inc();
            return Ok(());
        }
    };
    if scanned.torn_tail.is_some() || !scanned.skipped.is_empty() {
        tracing::error!(
            copy = %bucket.location(key),
            torn = ?scanned.torn_tail,
            damaged = scanned.skipped.len(),
            "a WAL copy is partly damaged; its valid records are replayed"
        );
        done.bad += 1;
        bucket.metrics.wal_copies_bad.inc();
    }
    let tenant = Tenant::new(tenant).unwrap_or_default();
    for record in scanned.records {
        let decoded = match sightline_model::otlp::decode_protobuf(&record) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(copy = %bucket.location(key), error = %e, "a WAL copy holds a record that is not OTLP; skipped");
                done.bad += 1;
                bucket.metrics.wal_copies_bad.inc();
                continue;
            }
        };
        if decoded.spans.is_empty() {
            continue;
        }
        let spans = decoded.spans.len() as u64;
        let batch = Batch::new(decoded.spans, record).with_tenant(tenant.clone());
        sink.consume_traces(batch)
            .await
            .map_err(|e| Error::Replay { location: bucket.location(key), detail: e.to_string() })?;
        done.spans += spans;
        bucket.metrics.wal_replayed_spans.inc_by(spans);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use sightline_model::ConsumeError;

    use super::*;
    use crate::tests::{now, tid, trace};
    use crate::{Options, Remote};

    /// Counts the spans replayed into it.
    #[derive(Default)]
    struct Spans(Mutex<Vec<String>>);

    #[async_trait]
    impl TracesConsumer for Spans {
        async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().extend(batch.spans().iter().map(|s| s.trace_id.to_string()));
            Ok(())
        }
    }

    /// A segment image holding one record per trace, as a node's WAL
    /// copies them (written through a real WAL, read back from its file).
    async fn image(traces: &[u32]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = sightline_wal::Wal::open(dir.path(), sightline_wal::Options::default()).unwrap();
        for n in traces {
            wal.append(Batch::from_spans(trace(tid(7, *n), "ghost", now())).otlp_bytes().clone())
                .await
                .unwrap();
        }
        let segment = wal.active_segment();
        wal.close().await.unwrap();
        let records = sightline_wal::read_segment(dir.path(), segment).unwrap();
        assert_eq!(records.len(), traces.len());
        std::fs::read(dir.path().join(format!("{:020}.wal", segment.0))).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_copies_each_group_commit_and_a_flush_deletes_the_copies() {
        use sightline_model::TraceStore as _;
        let s3 = crate::testing::SeaweedFs::start();
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::new(s3.url("flush"), "n1", dir.path());
        options.config = s3.config();
        options.wal_mirror = true;
        let remote = Remote::open(options, Arc::default()).await.unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut store_options = sightline_store::Options::new(dir.path());
        store_options.node_id = Some("n1".into());
        store_options.head_max_age = Duration::from_secs(3600);
        store_options.maintenance_interval = Duration::from_secs(3600);
        let metrics = Arc::new(sightline_store::Metrics::new(&mut registry));
        let store =
            sightline_store::EmbeddedStore::open_on(store_options, remote.storage(), metrics).await.unwrap();
        let bucket = Arc::clone(&remote.cluster.bucket);
        let prefix = node_prefix(crate::DEFAULT_TENANT, "n1");
        for n in 0..3 {
            store.consume_traces(Batch::from_spans(trace(tid(1, n), "svc", now()))).await.unwrap();
        }
        // Sequential appends: one group commit, one copy each.
        let copies = bucket.list(&prefix).await.unwrap();
        assert_eq!(copies.len(), 3, "{copies:?}");
        store.flush().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !bucket.list(&prefix).await.unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the flush left its WAL copies in the bucket");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.shutdown().await;
        remote.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_nodes_copies_are_replayed_once_and_bad_ones_counted_not_fatal() {
        let s3 = crate::testing::SeaweedFs::start();
        let dir = tempfile::tempdir().unwrap();
        let options = Options::new(s3.url("mirror"), "live", dir.path());
        let remote = Remote::open_store(s3.store(), "mirror", options, Arc::default()).await.unwrap();
        let bucket = Arc::clone(&remote.cluster.bucket);
        let storage = Arc::clone(remote.object_storage());
        let ghost = node_prefix(storage.tenant(), "ghost");
        let whole = image(&[1, 2]).await;
        let torn = image(&[3, 4]).await;
        let torn = &torn[..torn.len() - 3];
        for (name, body) in [
            (object_name(SegmentId(5), 8), whole.as_slice()),
            (object_name(SegmentId(6), 8), torn),
            (object_name(SegmentId(6), 4096), b"not a WAL copy".as_slice()),
        ] {
            bucket
                .put(&format!("{ghost}{name}"), Bytes::copy_from_slice(body), PutMode::Create)
                .await
                .unwrap();
        }
        // A name that is not a copy is left alone.
        bucket.put(&format!("{ghost}README"), Bytes::from_static(b"x"), PutMode::Create).await.unwrap();
        let heartbeat = |node: &str| format!("{NODES_PREFIX}{node}.json");
        let sink = Spans::default();
        let after = Duration::from_secs(1);

        // The ghost's copies are too fresh: nothing happens yet.
        bucket.put(&heartbeat("live"), Bytes::from_static(b"{}"), PutMode::Overwrite).await.unwrap();
        let done = replay_dead(&bucket, &storage, "live", Duration::from_secs(3600), &sink).await.unwrap();
        assert_eq!(done, Replayed::default());

        tokio::time::sleep(Duration::from_millis(2100)).await;
        bucket.put(&heartbeat("live"), Bytes::from_static(b"{}"), PutMode::Overwrite).await.unwrap();
        let done = replay_dead(&bucket, &storage, "live", after, &sink).await.unwrap();
        // Traces 1 and 2 whole, 3 from the torn copy; 4 was torn off, the
        // garbage object counted.
        let mut replayed = sink.0.lock().unwrap().clone();
        replayed.dedup();
        let expected: Vec<String> = [1, 2, 3].iter().map(|n| tid(7, *n).to_string()).collect();
        assert_eq!(replayed, expected);
        assert_eq!(done, Replayed { objects: 3, spans: 9, bad: 2 });
        let left: Vec<String> = bucket.list(&ghost).await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, vec![format!("{ghost}README")]);

        // A second round finds nothing more to replay: once.
        let done = replay_dead(&bucket, &storage, "live", after, &sink).await.unwrap();
        assert_eq!(done, Replayed::default());
        assert_eq!(sink.0.lock().unwrap().len(), 9);
    }

    #[test]
    fn names_sort_in_wal_order_and_parse_back() {
        let a = object_name(SegmentId(9), 12_345);
        let b = object_name(SegmentId(10), 8);
        assert!(a < b);
        assert_eq!(parse_name(&a), Some((9, 12_345)));
        assert_eq!(parse_name("junk"), None);
        assert_eq!(parse_name("1-x"), None);
    }
}
