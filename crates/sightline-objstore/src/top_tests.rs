//! Tenant discovery's LIST of the bucket: the trace and the log stores'
//! rounds share one per `--poll-interval`.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sightline_model::Tenant;
use sightline_store::TenantBlocks;

use crate::metrics::Request;
use crate::{Metrics, Options, Remote};

fn lists(metrics: &Metrics) -> u64 {
    metrics.requests.get_or_create(&Request { op: "list", outcome: "ok" }).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_and_log_discovery_share_one_list_per_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    bucket.put(&"acme/manifest.json".into(), "{}".into()).await.unwrap();
    let mut options = Options::new("memory://top", "n1", dir.path());
    options.poll_interval = Duration::from_millis(300);
    let metrics = Arc::new(Metrics::default());
    let remote = Arc::new(
        Remote::open_store(bucket.clone() as Arc<dyn ObjectStore>, "", options, Arc::clone(&metrics))
            .await
            .unwrap(),
    );
    let logs = remote.log_blocks();
    let before = lists(&metrics);
    let acme = vec![Tenant::new("acme").unwrap()];
    assert_eq!(TenantBlocks::tenants(&*remote).await.unwrap(), acme);
    assert_eq!(logs.tenants().await.unwrap(), acme);
    assert_eq!(lists(&metrics) - before, 1, "one LIST for both stores' round");

    // A tenant another node creates is found once the listing is older
    // than the poll interval.
    bucket.put(&"umbrella/manifest.json".into(), "{}".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let both = vec![Tenant::new("acme").unwrap(), Tenant::new("umbrella").unwrap()];
    assert_eq!(logs.tenants().await.unwrap(), both);
    assert_eq!(TenantBlocks::tenants(&*remote).await.unwrap(), both);
    assert_eq!(lists(&metrics) - before, 2);
}
