//! [`Tenants`]: one store per tenant behind one consumer and one query
//! entry, so the data of different tenants never mixes.
//!
//! Every batch names its tenant (receivers set it from the token or
//! `X-Scope-OrgID`); [`Tenants`] hands it to that tenant's store, opening
//! the store on the first write. Queries get the reader of the request's
//! tenant ([`TenantReaders`]); a tenant without data gets empty answers and
//! no folder is created for it. The default tenant's store is opened at
//! once, the stores of tenants that already have data at start too.
//!
//! The router is generic over the per-tenant store ([`TenantOpener`],
//! [`TenantStore`]) so other signals' stores (logs) can be routed the same
//! way; [`StoreOpener`] opens [`EmbeddedStore`]s.
//!
//! The number of tenants is capped (`--max-tenants`): each one's store has
//! a WAL, a head and background tasks, and all heads share one byte budget
//! ([`crate::HeadShare`]), so an unbounded number of tenants would shrink
//! every head to nothing. Writes of a tenant beyond the cap are refused
//! with a message naming the cap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;
use sightline_model::{
    Batch, ComponentHealth, ConsumeError, EmptyLogReader, EmptyReader, LogBatch, LogReader, LogTenantReaders,
    LogsConsumer, QueryError, SpanReader, Tenant, TenantReaders, TraceStore, TracesConsumer,
};

use crate::blockset::{BlockStorage, LocalFolder};
use crate::shared::Shared;
use crate::tasks::run_blocking;
use crate::{EmbeddedStore, Error, Metrics, Options};

/// The folder, under the data directory (and under a `--storage` folder),
/// holding one folder per tenant other than the default one. The default
/// tenant's data stays where a store without tenants keeps it, so an
/// upgrade keeps its data.
pub const TENANTS_DIR: &str = "tenants";

/// One tenant's store as the router needs it.
#[async_trait]
pub trait TenantStore: Clone + Send + Sync + 'static {
    /// Its health, for `/health`.
    fn health(&self) -> ComponentHealth;

    /// Flushes and closes it; safe to call twice.
    async fn shutdown(&self);
}

#[async_trait]
impl TenantStore for EmbeddedStore {
    fn health(&self) -> ComponentHealth {
        TraceStore::health(self)
    }

    async fn shutdown(&self) {
        TraceStore::shutdown(self).await
    }
}

/// Opens tenants' stores and knows which tenants have data.
#[async_trait]
pub trait TenantOpener: Send + Sync + 'static {
    /// The per-tenant store.
    type Store: TenantStore;

    /// Tenants other than the default one that have data already: their
    /// stores are opened at start.
    async fn existing(&self) -> Result<Vec<Tenant>, Error>;

    /// Whether `tenant` has data this opener would open (another node may
    /// have written it to a shared bucket since the start).
    async fn exists(&self, tenant: &Tenant) -> Result<bool, Error>;

    /// Opens `tenant`'s store, creating it if it has no data yet.
    async fn open(&self, tenant: &Tenant) -> Result<Self::Store, Error>;
}

/// See the module docs.
pub struct Tenants<O: TenantOpener> {
    opener: O,
    default: O::Store,
    others: RwLock<BTreeMap<Tenant, O::Store>>,
    /// Serialises opening, so two first writes of a tenant open it once.
    opening: tokio::sync::Mutex<()>,
    /// Most tenants, the default one included.
    max: usize,
}

impl<O: TenantOpener> std::fmt::Debug for Tenants<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants").field("tenants", &self.tenants()).field("max", &self.max).finish()
    }
}

impl<O: TenantOpener> Tenants<O> {
    /// Opens the default tenant's store and those of the tenants with
    /// data, at most `max_tenants` in all counting the default one (more
    /// found at start are opened anyway, with a warning: their data stays
    /// readable; new tenants are refused until the count is below the cap).
    pub async fn open(opener: O, max_tenants: usize) -> Result<Tenants<O>, Error> {
        let default = opener.open(&Tenant::default()).await?;
        let mut others = BTreeMap::new();
        for tenant in opener.existing().await? {
            if tenant.is_default() || others.contains_key(&tenant) {
                continue;
            }
            let store = opener.open(&tenant).await?;
            others.insert(tenant, store);
        }
        if others.len() + 1 > max_tenants {
            tracing::warn!(
                tenants = others.len() + 1,
                max = max_tenants,
                "more tenants have data than --max-tenants allows; all are served, new ones are refused"
            );
        } else if !others.is_empty() {
            tracing::info!(tenants = others.len() + 1, "opened the stores of every tenant with data");
        }
        Ok(Tenants {
            opener,
            default,
            others: RwLock::new(others),
            opening: tokio::sync::Mutex::new(()),
            max: max_tenants.max(1),
        })
    }

    /// The default tenant's store.
    pub fn default_store(&self) -> &O::Store {
        &self.default
    }

    /// Every open tenant, the default one first, then by name.
    pub fn tenants(&self) -> Vec<Tenant> {
        let mut all = vec![Tenant::default()];
        all.extend(self.others.read().keys().cloned());
        all
    }

    /// `tenant`'s store if it is open on this node (nothing is looked up
    /// in storage): what holds the tenant's heads.
    pub fn open_store(&self, tenant: &Tenant) -> Option<O::Store> {
        if tenant.is_default() {
            return Some(self.default.clone());
        }
        self.others.read().get(tenant).cloned()
    }

    /// The store `tenant` writes to, opened (and created) on its first
    /// write.
    pub async fn for_write(&self, tenant: &Tenant) -> Result<O::Store, ConsumeError> {
        if let Some(store) = self.open_store(tenant) {
            return Ok(store);
        }
        let _opening = self.opening.lock().await;
        if let Some(store) = self.open_store(tenant) {
            return Ok(store);
        }
        let count = self.others.read().len() + 1;
        if count >= self.max {
            return Err(ConsumeError::Overloaded {
                reason: format!(
                    "tenant {tenant} refused: the server keeps at most {} tenants (--max-tenants) and has {count}",
                    self.max
                ),
                retry_after: Duration::from_secs(60),
            });
        }
        let store = self.opener.open(tenant).await.map_err(|e| {
            tracing::error!(%tenant, error = %e, "cannot open a tenant's store");
            ConsumeError::Unavailable {
                reason: format!("cannot open the store of tenant {tenant}: {e}"),
                retry_after: Duration::from_secs(5),
            }
        })?;
        tracing::info!(%tenant, tenants = count + 1, "opened a new tenant's store");
        self.others.write().insert(tenant.clone(), store.clone());
        Ok(store)
    }

    /// The store `tenant` reads from: `None` when it has no data (nothing
    /// is created). A tenant with data this process has not opened (written
    /// by another node to a shared bucket) is opened.
    pub async fn for_read(&self, tenant: &Tenant) -> Result<Option<O::Store>, QueryError> {
        if let Some(store) = self.open_store(tenant) {
            return Ok(Some(store));
        }
        let unavailable = |e: Error| QueryError::Unavailable(format!("tenant {tenant}: {e}"));
        if !self.opener.exists(tenant).await.map_err(unavailable)? {
            return Ok(None);
        }
        let _opening = self.opening.lock().await;
        if let Some(store) = self.open_store(tenant) {
            return Ok(Some(store));
        }
        let store = self.opener.open(tenant).await.map_err(unavailable)?;
        tracing::info!(%tenant, "opened the store of a tenant found in storage");
        self.others.write().insert(tenant.clone(), store.clone());
        Ok(Some(store))
    }

    /// Opens the stores of tenants that have data but are not open here
    /// (in a shared bucket, tenants other nodes created: so the lease
    /// holder merges and expires their blocks too). Returns how many it
    /// opened. Tenants beyond the cap are not opened here; reads still
    /// open them.
    pub async fn discover(&self) -> Result<usize, Error> {
        let mut opened = 0;
        for tenant in self.opener.existing().await? {
            if self.open_store(&tenant).is_some() {
                continue;
            }
            let _opening = self.opening.lock().await;
            if self.open_store(&tenant).is_some() {
                continue;
            }
            if self.others.read().len() + 1 >= self.max {
                break;
            }
            let store = self.opener.open(&tenant).await?;
            tracing::info!(%tenant, "opened the store of a tenant found in storage");
            self.others.write().insert(tenant, store);
            opened += 1;
        }
        Ok(opened)
    }

    /// One check for all tenants: unhealthy when any tenant's store is,
    /// naming it; the detail lists the tenants.
    pub fn health(&self) -> ComponentHealth {
        let default = self.default.health();
        let others: Vec<(Tenant, O::Store)> =
            self.others.read().iter().map(|(t, s)| (t.clone(), s.clone())).collect();
        let failed: Vec<String> = others
            .iter()
            .map(|(t, s)| (t, s.health()))
            .filter(|(_, h)| !h.healthy)
            .map(|(t, h)| format!("tenant {t}: {}", h.detail))
            .collect();
        let names: Vec<&str> = others.iter().map(|(t, _)| t.as_str()).collect();
        let list = format!(
            "tenants ({} of at most {}): {}{}{}",
            others.len() + 1,
            self.max,
            Tenant::DEFAULT,
            if names.is_empty() { "" } else { ", " },
            names.join(", ")
        );
        let mut detail = format!("{}; {list}", default.detail);
        if !failed.is_empty() {
            detail = format!("{}; {detail}", failed.join("; "));
        }
        ComponentHealth { name: default.name, healthy: default.healthy && failed.is_empty(), detail }
    }

    /// Shuts every tenant's store down (each flushes its head).
    pub async fn shutdown(&self) {
        let others: Vec<O::Store> = self.others.read().values().cloned().collect();
        for store in others {
            store.shutdown().await;
        }
        self.default.shutdown().await;
    }
}

#[async_trait]
impl<O: TenantOpener> TracesConsumer for Tenants<O>
where
    O::Store: TracesConsumer,
{
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let store = self.for_write(batch.tenant()).await?;
        store.consume_traces(batch).await
    }
}

/// Each tenant's heads only ([`crate::HeadReader`]): what a node serves
/// its peers.
pub struct HeadReaders<O: TenantOpener<Store = EmbeddedStore>>(pub Arc<Tenants<O>>);

#[async_trait]
impl<O: TenantOpener<Store = EmbeddedStore>> TenantReaders for HeadReaders<O> {
    async fn reader(&self, tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError> {
        // Only tenants open here have a head: no need to look in storage.
        Ok(match self.0.open_store(tenant) {
            Some(store) => Arc::new(crate::HeadReader(store)),
            None => Arc::new(EmptyReader),
        })
    }
}

#[async_trait]
impl<O: TenantOpener> TenantReaders for Tenants<O>
where
    O::Store: SpanReader,
{
    async fn reader(&self, tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError> {
        Ok(match self.for_read(tenant).await? {
            Some(store) => Arc::new(store),
            None => Arc::new(EmptyReader),
        })
    }
}

#[async_trait]
impl<O: TenantOpener> LogsConsumer for Tenants<O>
where
    O::Store: LogsConsumer,
{
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        let store = self.for_write(batch.tenant()).await?;
        store.consume_logs(batch).await
    }
}

#[async_trait]
impl<O: TenantOpener> LogTenantReaders for Tenants<O>
where
    O::Store: LogReader,
{
    async fn log_reader(&self, tenant: &Tenant) -> Result<Arc<dyn LogReader>, QueryError> {
        Ok(match self.for_read(tenant).await? {
            Some(store) => Arc::new(store),
            None => Arc::new(EmptyLogReader),
        })
    }
}

/// Where each tenant's blocks are kept: the seam between the router and
/// a block storage (local folders here, a bucket's `<tenant>/` prefixes in
/// `sightline-objstore`).
#[async_trait]
pub trait TenantBlocks: Send + Sync + 'static {
    /// The block storage of `tenant`; `dir` is the tenant's local folder
    /// (its WAL), for storages that stage files locally.
    async fn storage(&self, tenant: &Tenant, dir: &Path) -> Result<Arc<dyn BlockStorage>, Error>;

    /// Tenants other than the default one with blocks in this storage.
    async fn tenants(&self) -> Result<Vec<Tenant>, Error>;

    /// Whether `tenant` has blocks in this storage.
    async fn has(&self, tenant: &Tenant) -> Result<bool, Error>;
}

/// Blocks in local folders: the default tenant's in `<root>/blocks`, every
/// other tenant's in `<root>/tenants/<tenant>/blocks`.
#[derive(Debug, Clone)]
pub struct LocalBlocks {
    root: PathBuf,
}

impl LocalBlocks {
    /// Tenants' blocks under `root` (the data directory or a `--storage`
    /// folder).
    pub fn new(root: impl Into<PathBuf>) -> LocalBlocks {
        LocalBlocks { root: root.into() }
    }

    fn root_of(&self, tenant: &Tenant) -> PathBuf {
        tenant_dir(&self.root, tenant)
    }
}

/// `root` for the default tenant, `root/tenants/<tenant>` for the others.
pub fn tenant_dir(root: &Path, tenant: &Tenant) -> PathBuf {
    if tenant.is_default() { root.to_owned() } else { root.join(TENANTS_DIR).join(tenant.as_str()) }
}

/// The tenants other than the default one with a folder under
/// `root/tenants`; other entries are ignored.
pub fn tenant_folders(root: &Path) -> Result<Vec<Tenant>, Error> {
    let dir = root.join(TENANTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        if !entry.file_type().map_err(|e| Error::io(&entry.path(), e))?.is_dir() {
            continue;
        }
        if let Some(tenant) = entry.file_name().to_str().and_then(|n| Tenant::new(n).ok())
            && !tenant.is_default()
        {
            out.push(tenant);
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl TenantBlocks for LocalBlocks {
    async fn storage(&self, tenant: &Tenant, _dir: &Path) -> Result<Arc<dyn BlockStorage>, Error> {
        let root = self.root_of(tenant);
        run_blocking(move || Ok(Arc::new(LocalFolder::new(&root)?) as Arc<dyn BlockStorage>)).await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        let root = self.root.clone();
        run_blocking(move || tenant_folders(&root)).await
    }

    async fn has(&self, tenant: &Tenant) -> Result<bool, Error> {
        Ok(self.root_of(tenant).is_dir())
    }
}

/// Opens [`EmbeddedStore`]s: each tenant's WAL under its folder of the
/// data directory, its blocks where `blocks` keeps them, all sharing one
/// [`Shared`] (head bytes and query slots).
pub struct StoreOpener {
    options: Options,
    blocks: Arc<dyn TenantBlocks>,
    shared: Shared,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for StoreOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOpener").field("data_dir", &self.options.data_dir).finish_non_exhaustive()
    }
}

impl StoreOpener {
    /// Stores set up as `options` (its `data_dir` is the default tenant's
    /// folder and holds the others' under `tenants/`), for at most
    /// `max_tenants` tenants sharing the head bytes of `options`.
    pub fn new(
        options: Options,
        blocks: Arc<dyn TenantBlocks>,
        max_tenants: usize,
        metrics: Arc<Metrics>,
    ) -> StoreOpener {
        let shared = Shared::new(&options, max_tenants, Arc::clone(&metrics));
        StoreOpener { options, blocks, shared, metrics }
    }

    /// What the stores share.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }
}

#[async_trait]
impl TenantOpener for StoreOpener {
    type Store = EmbeddedStore;

    async fn existing(&self) -> Result<Vec<Tenant>, Error> {
        let root = self.options.data_dir.clone();
        let mut all = run_blocking(move || tenant_folders(&root)).await?;
        all.extend(self.blocks.tenants().await?);
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn exists(&self, tenant: &Tenant) -> Result<bool, Error> {
        Ok(tenant_dir(&self.options.data_dir, tenant).is_dir() || self.blocks.has(tenant).await?)
    }

    async fn open(&self, tenant: &Tenant) -> Result<EmbeddedStore, Error> {
        let mut options = self.options.clone();
        options.data_dir = tenant_dir(&self.options.data_dir, tenant);
        let storage = self.blocks.storage(tenant, &options.data_dir).await?;
        EmbeddedStore::open_shared(options, storage, self.shared.clone(), Arc::clone(&self.metrics)).await
    }
}
