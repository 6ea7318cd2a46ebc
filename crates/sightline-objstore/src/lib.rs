//! Blocks in object storage (S3 and S3-compatible stores, GCS, Azure Blob)
//! shared by any number of Sightline nodes, through the `object_store`
//! crate: the object store is the distributed engine, there is no
//! coordinator.
//!
//! Each node keeps its WAL and head on its own `--data-dir` (an
//! acknowledged span is in that node's WAL, as without object storage) and
//! flushes blocks into the bucket, where every node reads them. What each
//! part does:
//!
//! * [`ObjectStorage`] is the store's `BlockStorage` in the bucket: layout,
//!   the shared manifest swapped by conditional PUT, blocks read by range;
//! * `cache`: byte ranges of blocks on local disk, LRU, `--cache-size`;
//! * [`Policy`]: the stated timeouts and retries (short for reads a query
//!   waits on, patient for background work); `availability`: whether the
//!   store answers (`/health`, and query reads stop waiting while not);
//! * `lease`: which node merges and expires blocks (a conditional-write
//!   lease with a TTL; correctness never depends on it);
//! * `cluster`: heartbeats, the lease, deleting dropped blocks after the
//!   grace period;
//! * `selftest`: refuses a store that ignores conditional writes;
//! * `peers`: queries that also read live peers' heads (what they
//!   acknowledged but have not flushed yet), partial results marked.
//!
//! [`Remote::open`] connects and checks the store; the binary opens the
//! `EmbeddedStore` on [`Remote::storage`], then calls [`Remote::start`].
#![deny(missing_docs)]

mod availability;
mod bucket;
mod cache;
mod cluster;
mod error;
mod inventory;
mod lease;
mod metrics;
mod pace;
mod peers;
mod peertail;
mod policy;
mod selftest;
mod source;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod walmirror;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::ObjectStore;
use parking_lot::Mutex;
use sightline_model::{ComponentHealth, Tenant};
use sightline_store::{BlockStorage, TenantBlocks};
use tokio::sync::watch;

pub use bucket::{Bucket, Object, Put};
pub use cache::Cache;
pub use error::Error;
pub use inventory::{BlockEntry, Signal, Summary, Verified, inventory, verify};
pub use lease::Lease;
pub use metrics::Metrics;
pub use peers::{PeerLogReaders, PeerOptions, PeerReaders, Peers};
pub use policy::Policy;
pub use selftest::check_conditional_writes;
pub use storage::ObjectStorage;

/// The tenant whose blocks live under `single-tenant/`, as Tempo names its
/// default: the prefix every tenant-less request uses.
pub const DEFAULT_TENANT: &str = "single-tenant";

/// How to reach the bucket and share it. `Options` because the binary
/// builds it in code from its config.
#[derive(Debug, Clone)]
pub struct Options {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    pub url: String,
    /// Settings for the store on top of its standard environment variables
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as object_store config keys such
    /// as `aws_endpoint` or `aws_allow_http`; they win over the
    /// environment.
    pub config: Vec<(String, String)>,
    /// The tenant prefix blocks and manifest live under.
    pub tenant: String,
    /// This node's id: unique among the nodes sharing the bucket, stable
    /// across restarts (its WAL replay point is kept under it).
    pub node_id: String,
    /// The node's own folder: `cache/` and `staging/` go there.
    pub data_dir: PathBuf,
    /// Bound of the local block cache, in bytes.
    pub cache_bytes: u64,
    /// How often the manifest is polled for other nodes' blocks while the
    /// cluster is busy.
    pub poll_interval: Duration,
    /// The longest wait between two manifest polls while nothing changes
    /// and nobody queries this node (see `pace.rs`); at least
    /// `poll_interval`.
    pub idle_poll_interval: Duration,
    /// How long a compaction lease lasts without renewal. It also paces
    /// the heartbeat (every quarter of it), so it sets both the fixed
    /// request cost and how soon nodes notice each other come and go.
    pub lease_ttl: Duration,
    /// How long a dropped block stays in the bucket: longer than the
    /// longest query plus the poll interval, since a node that has not yet
    /// seen the drop may still read it.
    pub delete_grace: Duration,
    /// Where this node's query API answers other nodes (`HOST:PORT`),
    /// written into its heartbeat so they can ask for its heads.
    pub advertise: Option<String>,
    /// The lossless mode (`--durability bucket`): every trace WAL group
    /// commit is copied into the bucket before it is acknowledged, and the
    /// lease holder replays the copies of nodes that stay dead (see
    /// [`Remote::replay_into`]).
    pub wal_mirror: bool,
    /// How long a node's heartbeat and newest WAL copy must be old before
    /// the lease holder replays its copies.
    pub wal_replay_after: Duration,
}

impl Options {
    /// Defaults for `url`, node `node_id` and folder `data_dir`.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>, data_dir: impl Into<PathBuf>) -> Options {
        Options {
            url: url.into(),
            config: Vec::new(),
            tenant: DEFAULT_TENANT.to_owned(),
            node_id: node_id.into(),
            data_dir: data_dir.into(),
            cache_bytes: 1 << 30,
            poll_interval: Duration::from_secs(5),
            idle_poll_interval: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(60),
            delete_grace: Duration::from_secs(10 * 60),
            advertise: None,
            wal_mirror: false,
            wal_replay_after: Duration::from_secs(120),
        }
    }
}

/// Whether a `--storage` value names an object store (`scheme://…`)
/// rather than a local folder.
pub fn is_url(storage: &str) -> bool {
    storage.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
    })
}

/// Checks that `value` can be a path component in the bucket: 1-64 of
/// `[A-Za-z0-9._-]`, not starting with `.` or `_` (`_cluster` is ours).
pub fn check_name(what: &'static str, value: &str) -> Result<(), Error> {
    let why = "use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or _";
    let ok = (1..=64).contains(&value.len())
        && !value.starts_with(['.', '_'])
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(Error::InvalidName { what, value: value.to_owned(), why }) }
}

/// The node id kept in `<data_dir>/node-id`, created (random) on first
/// use: a restarted node keeps its id, and so its WAL replay point.
pub fn node_id(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => {
            let id = id.trim().to_owned();
            check_name("node id", &id)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
            let id = format!("n{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
            let tmp = data_dir.join("node-id.tmp");
            std::fs::write(&tmp, format!("{id}\n")).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            Ok(id)
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Installs ring as the process's TLS crypto provider. object_store's
/// HTTP client is reqwest with rustls built without a provider (so the
/// tree holds ring only, not ring and aws-lc-rs); rustls needs one chosen
/// before the first client is built. Idempotent.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the object store `url` names for background work
/// ([`Policy::BACKGROUND`]): bucket from the URL, credentials and endpoint
/// from the environment, then `config`. Returns the store and the prefix
/// inside it.
pub fn connect(url: &str, config: &[(String, String)]) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    connect_with(url, config, &Policy::BACKGROUND)
}

/// Like [`connect`], with `policy`'s timeouts and retries (an explicit
/// `timeout` or `connect_timeout` in `config` still wins).
pub fn connect_with(
    url: &str,
    config: &[(String, String)],
    policy: &Policy,
) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    install_crypto();
    let config: Vec<(String, String)> =
        policy.client_config().into_iter().chain(config.iter().cloned()).collect();
    let config = config.as_slice();
    let invalid = |why: String| Error::InvalidUrl { url: url.to_owned(), why };
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| invalid("expected scheme://bucket/prefix".into()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket name".into()));
    }
    let store = match scheme {
        "s3" | "s3a" => backends::s3(url, bucket, config, policy)?,
        "gs" => backends::gcs(url, bucket, config, policy)?,
        "az" | "azure" => backends::azure(url, bucket, config, policy)?,
        other => return Err(invalid(format!("unknown scheme {other:?}: use s3://, gs:// or az://"))),
    };
    Ok((store, prefix.trim_matches('/').to_owned()))
}

/// One builder per cloud, each behind its cargo feature.
mod backends {
    use std::sync::Arc;

    use object_store::ObjectStore;

    use crate::{Error, Policy};

    type Built = Result<Arc<dyn ObjectStore>, Error>;

    #[cfg_attr(all(feature = "aws", feature = "gcp", feature = "azure"), allow(dead_code))]
    fn missing(url: &str, feature: &str) -> Error {
        Error::InvalidUrl {
            url: url.to_owned(),
            why: format!("this build has no support for it; rebuild with `--features {feature}`"),
        }
    }

    #[cfg_attr(not(any(feature = "aws", feature = "gcp", feature = "azure")), allow(dead_code))]
    fn invalid(url: &str, e: impl std::fmt::Display) -> Error {
        Error::InvalidUrl { url: url.to_owned(), why: e.to_string() }
    }

    #[cfg(feature = "aws")]
    pub(super) fn s3(url: &str, bucket: &str, config: &[(String, String)], policy: &Policy) -> Built {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(policy.retry());
        for (key, value) in config {
            builder = builder.with_config(key.parse().map_err(|e| invalid(url, e))?, value);
        }
        Ok(Arc::new(builder.build().map_err(|e| invalid(url, e))?))
    }

    #[cfg(not(feature = "aws"))]
    pub(super) fn s3(url: &str, _: &str, _: &[(String, String)], _: &Policy) -> Built {
        Err(missing(url, "aws"))
    }

    #[cfg(feature = "gcp")]
    pub(super) fn gcs(url: &str, bucket: &str, config: &[(String, String)], policy: &Policy) -> Built {
        let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .with_retry(policy.retry());
        for (key, value) in config {
            builder = builder.with_config(key.parse().map_err(|e| invalid(url, e))?, value);
        }
        Ok(Arc::new(builder.build().map_err(|e| invalid(url, e))?))
    }

    #[cfg(not(feature = "gcp"))]
    pub(super) fn gcs(url: &str, _: &str, _: &[(String, String)], _: &Policy) -> Built {
        Err(missing(url, "gcp"))
    }

    #[cfg(feature = "azure")]
    pub(super) fn azure(url: &str, container: &str, config: &[(String, String)], policy: &Policy) -> Built {
        let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_container_name(container)
            .with_retry(policy.retry());
        for (key, value) in config {
            builder = builder.with_config(key.parse().map_err(|e| invalid(url, e))?, value);
        }
        Ok(Arc::new(builder.build().map_err(|e| invalid(url, e))?))
    }

    #[cfg(not(feature = "azure"))]
    pub(super) fn azure(url: &str, _: &str, _: &[(String, String)], _: &Policy) -> Built {
        Err(missing(url, "azure"))
    }
}

/// A node's connection to the shared bucket. See the crate docs.
#[derive(Debug)]
pub struct Remote {
    storage: Arc<ObjectStorage>,
    cluster: Arc<cluster::Cluster>,
    cache: Arc<Cache>,
    url: String,
    poll_interval: Duration,
    idle_poll_interval: Duration,
    /// When this node was last queried: its manifests' polls keep pace
    /// while it is.
    activity: Arc<pace::Activity>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The lossless mode: every tenant's storage copies its WAL.
    wal_mirror: bool,
    /// The bucket's top-level names as last listed, and when: see
    /// [`Remote::top_names`].
    top: tokio::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

impl Remote {
    /// Connects to the store `options.url` names (one client for
    /// background work, one for the reads queries wait on, see [`Policy`]),
    /// checks that it honours conditional writes, and prepares the cache
    /// and staging folders. Must run inside a multi-threaded tokio runtime.
    pub async fn open(options: Options, metrics: Arc<Metrics>) -> Result<Remote, Error> {
        let (store, prefix) = connect(&options.url, &options.config)?;
        let (reads, _) = connect_with(&options.url, &options.config, &Policy::QUERY)?;
        Remote::open_with(store, reads, &prefix, options, metrics).await
    }

    /// Like [`Remote::open`] on a store already built (tests wrap one),
    /// which query reads use too.
    pub async fn open_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Remote, Error> {
        let reads = Arc::clone(&store);
        Remote::open_with(store, reads, prefix, options, metrics).await
    }

    async fn open_with(
        store: Arc<dyn ObjectStore>,
        reads: Arc<dyn ObjectStore>,
        prefix: &str,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Remote, Error> {
        check_name("node id", &options.node_id)?;
        check_name("tenant", &options.tenant)?;
        let bucket = Arc::new(Bucket::new(store, prefix, options.url.clone(), metrics).with_reads(reads));
        check_conditional_writes(&bucket, &options.node_id).await?;
        let cache = Arc::new(Cache::open(
            &options.data_dir.join("cache"),
            options.cache_bytes,
            Arc::clone(&bucket.metrics),
        )?);
        let lease = Arc::new(Lease::new(Arc::clone(&bucket), options.node_id.clone(), options.lease_ttl));
        let activity = Arc::new(pace::Activity::new());
        let storage = Arc::new(
            ObjectStorage::new(
                Arc::clone(&bucket),
                options.tenant.clone(),
                options.node_id.clone(),
                options.data_dir.join("staging"),
                Arc::clone(&cache),
                Arc::clone(&lease),
                pace::Pace::new(options.poll_interval, options.idle_poll_interval, Arc::clone(&activity)),
            )?
            .with_wal_mirror(options.wal_mirror),
        );
        let cluster = Arc::new(cluster::Cluster {
            bucket,
            node: options.node_id.clone(),
            lease,
            storages: Mutex::new(vec![Arc::clone(&storage)]),
            grace: options.delete_grace,
            nodes: Mutex::new(Default::default()),
            advertise: options.advertise.clone(),
            peers: watch::Sender::new(Default::default()),
            wal_replay: Mutex::new(None),
            wal_replay_after: options.wal_mirror.then_some(options.wal_replay_after),
        });
        let wal_mirror = options.wal_mirror;
        let (stop, _) = watch::channel(false);
        Ok(Remote {
            storage,
            cluster,
            cache,
            url: options.url,
            poll_interval: options.poll_interval,
            idle_poll_interval: options.idle_poll_interval,
            activity,
            stop,
            task: Mutex::new(None),
            wal_mirror,
            top: tokio::sync::Mutex::new(None),
        })
    }

    /// The block storage of `tenant` under its `<tenant>/` prefix, sharing
    /// the bucket, cache and lease; `dir` is the tenant's local folder
    /// (uploads are staged in its `staging/`). The default tenant gets
    /// [`Remote::storage`]'s. The lease holder cleans up after it too.
    pub fn tenant_storage(&self, tenant: &Tenant, dir: &Path) -> Result<Arc<ObjectStorage>, Error> {
        if tenant.as_str() == self.storage.tenant() {
            return Ok(Arc::clone(&self.storage));
        }
        check_name("tenant", tenant.as_str())?;
        self.register(tenant, dir, |s| s.with_wal_mirror(self.wal_mirror))
    }

    /// Where the lease holder replays dead nodes' WAL copies in the
    /// lossless mode (the binary's tenant router). Set before
    /// [`Remote::start`]; without it copies are only written and deleted.
    pub fn replay_into(&self, sink: Arc<dyn sightline_model::TracesConsumer>) {
        *self.cluster.wal_replay.lock() = Some(walmirror::ReplaySink(sink));
    }

    /// The storage of `tenant`'s log blocks under its `<tenant>/logs/`
    /// prefix, sharing the bucket, cache and lease; `dir` is the tenant's
    /// log folder (uploads are staged in its `staging/`). The lease holder
    /// cleans up after it too.
    pub fn log_storage(&self, tenant: &Tenant, dir: &Path) -> Result<Arc<ObjectStorage>, Error> {
        check_name("tenant", tenant.as_str())?;
        self.register(tenant, dir, ObjectStorage::for_logs)
    }

    /// A storage of `tenant` on the shared bucket, cache and lease, shaped
    /// by `shape` (trace or log blocks), staged in `dir/staging` and
    /// registered for the lease holder's clean-up.
    fn register(
        &self,
        tenant: &Tenant,
        dir: &Path,
        shape: impl FnOnce(ObjectStorage) -> ObjectStorage,
    ) -> Result<Arc<ObjectStorage>, Error> {
        let storage = Arc::new(shape(ObjectStorage::new(
            Arc::clone(&self.cluster.bucket),
            tenant.to_string(),
            self.cluster.node.clone(),
            dir.join("staging"),
            Arc::clone(&self.cache),
            Arc::clone(&self.cluster.lease),
            pace::Pace::new(self.poll_interval, self.idle_poll_interval, Arc::clone(&self.activity)),
        )?));
        self.cluster.storages.lock().push(Arc::clone(&storage));
        Ok(storage)
    }

    /// Every tenant's log blocks in the bucket (see [`Remote::log_storage`]),
    /// for the log stores' opener.
    pub fn log_blocks(self: &Arc<Self>) -> Arc<dyn TenantBlocks> {
        Arc::new(RemoteLogs(Arc::clone(self)))
    }

    /// The block storage to open the store on.
    pub fn storage(&self) -> Arc<dyn BlockStorage> {
        Arc::clone(&self.storage) as Arc<dyn BlockStorage>
    }

    /// The same, with the calls only this crate has (clean-up).
    pub fn object_storage(&self) -> &Arc<ObjectStorage> {
        &self.storage
    }

    /// The other live nodes that advertise an address, as the last
    /// heartbeat round read them: (node id, `HOST:PORT`).
    pub fn peer_addrs(&self) -> Vec<(String, String)> {
        self.cluster.peers.borrow().iter().map(|(n, a)| (n.clone(), a.clone())).collect()
    }

    /// Wakes when [`Remote::peer_addrs`] changes.
    pub(crate) fn peer_changes(&self) -> watch::Receiver<std::collections::BTreeMap<String, String>> {
        self.cluster.peers.subscribe()
    }

    /// The names directly under the bucket's prefix (tenants, `_cluster`),
    /// listed at most once per `--poll-interval`, the pace of the block
    /// lists: the trace and the log stores both discover tenants from it
    /// (at start and every round), and each LIST is a billed request.
    /// Concurrent callers share one LIST.
    async fn top_names(&self) -> Result<Vec<String>, Error> {
        let mut top = self.top.lock().await;
        if let Some((at, names)) = &*top
            && at.elapsed() < self.poll_interval
        {
            return Ok(names.clone());
        }
        let names = self.cluster.bucket.list_top().await?;
        *top = Some((std::time::Instant::now(), names.clone()));
        Ok(names)
    }

    /// Records that this node is being queried: its manifests are then
    /// polled every `poll_interval` again (see `pace.rs`).
    pub fn note_query(&self) {
        self.activity.note();
    }

    /// This node's id in the bucket.
    pub fn node_id(&self) -> &str {
        &self.cluster.node
    }

    /// The compaction lease.
    pub fn lease(&self) -> &Arc<Lease> {
        &self.cluster.lease
    }

    /// Starts the heartbeat, the lease and the clean-up (once the store is
    /// open on [`Remote::storage`]).
    pub fn start(&self) {
        let task = tokio::spawn(Arc::clone(&self.cluster).run(self.stop.subscribe()));
        if let Some(old) = self.task.lock().replace(task) {
            old.abort();
        }
    }

    /// Stops the background work and gives the lease up, after the store
    /// has flushed.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.cluster.lease.release().await;
    }

    /// For `/health`: the bucket, the lease holder, the nodes seen, the
    /// cache; unhealthy ("degraded: …", since when and the last error)
    /// while requests to the store fail. The node still takes writes into
    /// its WAL then, so `/ready` does not follow this check.
    pub fn health(&self) -> ComponentHealth {
        let nodes = self.cluster.nodes.lock().iter().cloned().collect::<Vec<_>>().join(", ");
        let holder = match self.cluster.lease.holder() {
            Some(h) if self.cluster.lease.held() => format!("{h} (this node)"),
            Some(h) => h,
            None => "nobody yet".to_owned(),
        };
        let (used, capacity) = self.cache.usage();
        let peers =
            self.peer_addrs().iter().map(|(n, a)| format!("{n} at {a}")).collect::<Vec<_>>().join(", ");
        let degraded = self.cluster.bucket.degraded();
        let durability =
            if self.wal_mirror { "; durability: bucket (WAL copied before each OK)" } else { "" };
        let detail = format!(
            "{} as node {}; compaction lease: {holder}; nodes: [{nodes}]; peers' heads read from: [{peers}]; cache {} of {} MiB{durability}",
            self.url,
            self.cluster.node,
            used >> 20,
            capacity >> 20
        );
        ComponentHealth {
            name: "object_storage".into(),
            healthy: degraded.is_none(),
            detail: match degraded {
                Some(why) => format!("{why}; {detail}"),
                None => detail,
            },
        }
    }
}

/// Each tenant's blocks under its `<tenant>/` prefix of the bucket.
#[async_trait]
impl TenantBlocks for Remote {
    async fn storage(
        &self,
        tenant: &Tenant,
        dir: &Path,
    ) -> Result<Arc<dyn BlockStorage>, sightline_store::Error> {
        Ok(self.tenant_storage(tenant, dir)? as Arc<dyn BlockStorage>)
    }

    /// Top-level prefixes holding a tenant's manifest (`_cluster` and
    /// names that are no tenant are skipped).
    async fn tenants(&self) -> Result<Vec<Tenant>, sightline_store::Error> {
        let mut out = Vec::new();
        for name in self.top_names().await? {
            let Ok(tenant) = Tenant::new(&name) else { continue };
            if tenant.as_str() != self.storage.tenant() && check_name("tenant", &name).is_ok() {
                out.push(tenant);
            }
        }
        Ok(out)
    }

    async fn has(&self, tenant: &Tenant) -> Result<bool, sightline_store::Error> {
        if check_name("tenant", tenant.as_str()).is_err() {
            return Ok(false);
        }
        // On a query's path (a tenant's first query): bounded like one.
        Ok(self.cluster.bucket.exists_for_query(&format!("{tenant}/manifest.json")).await?)
    }
}

/// Each tenant's log blocks under its `<tenant>/logs/` prefix.
#[derive(Debug)]
struct RemoteLogs(Arc<Remote>);

#[async_trait]
impl TenantBlocks for RemoteLogs {
    async fn storage(
        &self,
        tenant: &Tenant,
        dir: &Path,
    ) -> Result<Arc<dyn BlockStorage>, sightline_store::Error> {
        Ok(self.0.log_storage(tenant, dir)? as Arc<dyn BlockStorage>)
    }

    /// Tenants with traces or logs in the bucket (a tenant's first write
    /// creates its trace manifest, but only logs may follow).
    async fn tenants(&self) -> Result<Vec<Tenant>, sightline_store::Error> {
        TenantBlocks::tenants(&*self.0).await
    }

    async fn has(&self, tenant: &Tenant) -> Result<bool, sightline_store::Error> {
        if check_name("tenant", tenant.as_str()).is_err() {
            return Ok(false);
        }
        Ok(self.0.cluster.bucket.exists_for_query(&format!("{tenant}/logs/manifest.json")).await?)
    }
}

#[cfg(test)]
mod logs_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod top_tests;
