//! One store per tenant behind [`crate::Tenants`] (issue 16, item 1).

use sightline_model::{Tenant, TenantReaders};

use super::*;
use crate::{LocalBlocks, StoreOpener, Tenants};

async fn open_tenants(dir: &std::path::Path, max: usize) -> Tenants<StoreOpener> {
    open_with_metrics(dir, max, Arc::new(crate::Metrics::new(&mut Registry::default()))).await
}

async fn open_with_metrics(
    dir: &std::path::Path,
    max: usize,
    metrics: Arc<crate::Metrics>,
) -> Tenants<StoreOpener> {
    let opener = StoreOpener::new(options(dir), Arc::new(LocalBlocks::new(dir)), max, metrics);
    Tenants::open(opener, max).await.unwrap()
}

async fn write(store: &Tenants<StoreOpener>, tenant: &Tenant, traces: std::ops::Range<u32>) {
    let spans = Gen::new();
    for n in traces {
        let batch =
            Batch::from_spans(spans.trace(n, now() + u64::from(n) * 1000)).with_tenant(tenant.clone());
        store.consume_traces(batch).await.unwrap();
    }
}

async fn ids(store: &Tenants<StoreOpener>, tenant: &Tenant) -> Vec<TraceId> {
    let reader = store.reader(tenant).await.unwrap();
    let mut ids: Vec<TraceId> =
        reader.find_traces(&query()).await.unwrap().iter().map(|t| t[0].trace_id).collect();
    ids.sort();
    ids
}

fn sorted(range: std::ops::Range<u32>) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = range.map(tid).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_reads_only_its_own_data_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (acme, umbrella) = (Tenant::new("acme").unwrap(), Tenant::new("umbrella").unwrap());
    let store = open_tenants(dir.path(), 8).await;
    write(&store, &Tenant::default(), 0..3).await;
    write(&store, &acme, 10..14).await;
    assert_eq!(ids(&store, &Tenant::default()).await, sorted(0..3));
    assert_eq!(ids(&store, &acme).await, sorted(10..14));
    // A tenant that never wrote reads nothing, and no folder is made for it.
    assert!(ids(&store, &umbrella).await.is_empty());
    assert!(store.reader(&umbrella).await.unwrap().services().await.unwrap().is_empty());
    assert!(!dir.path().join("tenants/umbrella").exists());
    // The same trace id in two tenants stays two traces.
    write(&store, &umbrella, 10..11).await;
    let reader = store.reader(&umbrella).await.unwrap();
    assert_eq!(reader.trace(tid(10)).await.unwrap().unwrap().len(), 2);
    assert_eq!(store.reader(&acme).await.unwrap().trace(tid(10)).await.unwrap().unwrap().len(), 2);
    assert_eq!(store.tenants(), vec![Tenant::default(), acme.clone(), umbrella.clone()]);
    let health = store.health();
    assert!(
        health.healthy && health.detail.contains("tenants (3 of at most 8): single-tenant, acme, umbrella")
    );
    // Half in blocks, half in the WAL: both survive the restart apart.
    store.default_store().flush().await.unwrap();
    store.shutdown().await;
    assert!(dir.path().join("tenants/acme/wal").is_dir());
    assert!(dir.path().join("tenants/acme/manifest.json").is_file());

    let store = open_tenants(dir.path(), 8).await;
    assert_eq!(store.tenants().len(), 3, "tenants with data are opened at start");
    assert_eq!(ids(&store, &Tenant::default()).await, sorted(0..3));
    assert_eq!(ids(&store, &acme).await, sorted(10..14));
    assert_eq!(ids(&store, &umbrella).await, sorted(10..11));
    let reader = store.reader(&acme).await.unwrap();
    let deps = reader.dependencies(now() + 3_600_000_000_000, 7_200_000_000_000).await;
    assert_eq!(deps.unwrap().iter().map(|d| d.call_count).sum::<u64>(), 4);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_beyond_the_cap_are_refused_and_heads_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_tenants(dir.path(), 3).await;
    let total = options(dir.path()).head_max_bytes;
    assert_eq!(store.default_store().shared_heads().per_store(), total);
    write(&store, &Tenant::new("a").unwrap(), 0..1).await;
    assert_eq!(store.default_store().shared_heads().per_store(), total / 2);
    write(&store, &Tenant::new("b").unwrap(), 0..1).await;
    assert_eq!(store.default_store().shared_heads().per_store(), total / 3);
    let refused = Batch::from_spans(Gen::new().trace(1, now())).with_tenant(Tenant::new("c").unwrap());
    match store.consume_traces(refused).await {
        Err(ConsumeError::Overloaded { reason, .. }) => {
            assert!(reason.contains("at most 3 tenants (--max-tenants)"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!dir.path().join("tenants/c").exists());
    store.shutdown().await;
}

/// The store gauges on `/metrics` are the sum over all tenants' stores,
/// not whichever store set them last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_gauges_add_up_over_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = open_with_metrics(dir.path(), 8, Arc::clone(&metrics)).await;
    let (a, b) = (Tenant::new("a").unwrap(), Tenant::new("b").unwrap());
    write(&store, &a, 0..3).await;
    write(&store, &b, 0..5).await;
    write(&store, &Tenant::default(), 0..1).await;
    let mut heads = 0;
    for tenant in [&a, &b, &Tenant::default()] {
        heads += store.for_read(tenant).await.unwrap().unwrap().head_bytes();
    }
    assert!(heads > 0);
    assert_eq!(metrics.head_bytes.get(), heads as i64);
    // Blocks: each tenant's flush adds its own.
    for tenant in [&a, &b] {
        store.for_read(tenant).await.unwrap().unwrap().flush().await.unwrap();
    }
    assert_eq!(metrics.blocks.get(), 2);
    store.shutdown().await;
}
