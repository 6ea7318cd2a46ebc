//! Log stores on a real S3 server (SeaweedFS): of two nodes merging the
//! same log blocks (one of them a stale lease holder) exactly one commits,
//! and nothing is lost or doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sightline_logstore::{LogStore, Options as LogOptions};
use sightline_model::{
    KeyValue, LogBatch, LogQuery, LogReader, LogRecord, LogsConsumer, MemoryBudget, Resource, Tenant,
};

use crate::testing::SeaweedFs;
use crate::{Metrics, Options, Remote};

struct Node {
    remote: Remote,
    logs: LogStore,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn open(s3: &SeaweedFs, prefix: &str, id: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::new(s3.url(prefix), id, dir.path());
        options.config = s3.config();
        // No background polling: views are refreshed by hand, so both
        // nodes plan the same merge from the same list.
        options.poll_interval = Duration::from_secs(3600);
        let remote = Remote::open(options, Arc::new(Metrics::default())).await.unwrap();
        let logs_dir = dir.path().join("logs");
        let mut log_options = LogOptions::new(&logs_dir, Arc::new(MemoryBudget::new(256 << 20)));
        log_options.storage = Some(remote.log_storage(&Tenant::default(), &logs_dir).unwrap());
        log_options.id_prefix = format!("{id}-");
        log_options.background_compaction = false;
        log_options.head_max_age = Duration::from_secs(3600);
        log_options.maintenance_interval = Duration::from_secs(3600);
        let logs = LogStore::open(log_options).await.unwrap();
        Node { remote, logs, _dir: dir }
    }

    /// Ingests 10 records tagged `node`/`round` and flushes them into a block.
    async fn flush_round(&self, node: &str, round: u32) {
        let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", node)], 0, String::new()));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let records = (0..10u64)
            .map(|i| LogRecord {
                resource: Arc::clone(&resource),
                ..LogRecord::info(now + i, format!("{node} round {round} record {i}"))
            })
            .collect();
        self.logs.consume_logs(LogBatch::from_records(records)).await.unwrap();
        self.logs.flush_now().await.unwrap();
    }

    /// How often each body is served.
    async fn bodies(&self) -> HashMap<String, usize> {
        let page = self.logs.find_logs(&LogQuery { limit: 1000, ..LogQuery::default() }).await.unwrap();
        let mut out = HashMap::new();
        for r in page.records {
            *out.entry(format!("{:?}", r.body)).or_insert(0) += 1;
        }
        out
    }

    async fn close(self) {
        self.logs.shutdown().await;
        self.remote.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_merging_the_same_log_blocks_exactly_one_commits() {
    let s3 = SeaweedFs::start();
    let a = Node::open(&s3, "log-race", "node-a").await;
    let b = Node::open(&s3, "log-race", "node-b").await;
    for round in 0..2 {
        a.flush_round("a", round).await;
        b.flush_round("b", round).await;
    }
    a.logs.refresh_now().await.unwrap();
    b.logs.refresh_now().await.unwrap();
    assert_eq!((a.logs.blocks().len(), b.logs.blocks().len()), (4, 4), "each serves both nodes' blocks");

    // Both plan the same merge; whoever commits second finds its inputs
    // gone (compare-and-swap on the manifest) and discards its output.
    let (ra, rb) = tokio::join!(a.logs.compact_now(), b.logs.compact_now());
    ra.unwrap();
    rb.unwrap();
    a.logs.refresh_now().await.unwrap();
    b.logs.refresh_now().await.unwrap();
    assert_eq!((a.logs.blocks().len(), b.logs.blocks().len()), (1, 1));
    for node in [&a, &b] {
        let bodies = node.bodies().await;
        assert_eq!(bodies.len(), 40, "every record: {bodies:?}");
        assert!(bodies.values().all(|n| *n == 1), "no record twice: {bodies:?}");
    }
    // The loser's output is gone from the bucket; the winner's inputs
    // wait out their grace period.
    let storage = a.remote.log_storage(&Tenant::default(), &a._dir.path().join("logs2")).unwrap();
    let listed = storage.list_blocks().await.unwrap();
    assert_eq!(listed.len(), 5, "4 dropped inputs + 1 merged block: {listed:?}");
    a.close().await;
    b.close().await;
}
