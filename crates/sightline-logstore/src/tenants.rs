//! [`LogOpener`]: opens each tenant's log store for
//! [`sightline_store::Tenants`], the router the trace stores use, so logs
//! are kept apart per tenant exactly as traces are (same folders, same
//! `--max-tenants`, same first-write opening).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sightline_model::{ComponentHealth, Tenant};
use sightline_store::{TenantBlocks, TenantOpener, TenantStore, tenant_dir, tenant_folders};

use crate::{LogStore, Options};

/// The log store's folder inside a tenant's folder: `<data dir>/logs` for
/// the default tenant (where a server without tenants keeps it),
/// `<data dir>/tenants/<tenant>/logs` for the others, beside their traces.
pub const LOGS_DIR: &str = "logs";

/// Opens [`LogStore`]s under a data directory, every one set up as the
/// template options (clones of which share one [`crate::Shared`]: the
/// head bytes and the query slots).
pub struct LogOpener {
    data_dir: PathBuf,
    template: Options,
    /// Where each tenant's blocks live when not in its log folder (a
    /// bucket shared by nodes).
    blocks: Option<Arc<dyn TenantBlocks>>,
    /// Tenants in `blocks` found without logs, and when: discovery asks
    /// the storage again only [`LOGLESS_RECHECK`] later.
    logless: parking_lot::Mutex<HashMap<Tenant, Instant>>,
}

/// How long discovery trusts that a tenant of the bucket has no logs.
/// Every tenant has traces (its first write creates its trace manifest)
/// but many never send logs; asking for each of them every round (30 s)
/// was one HEAD per such tenant per round. Queries do not wait on this:
/// a tenant's first log query asks the storage itself
/// ([`TenantOpener::exists`]).
const LOGLESS_RECHECK: Duration = Duration::from_secs(600);

impl std::fmt::Debug for LogOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOpener")
            .field("data_dir", &self.data_dir)
            .field("template", &self.template)
            .field("shared_blocks", &self.blocks.is_some())
            .finish()
    }
}

impl LogOpener {
    /// Log stores of the tenants under `data_dir`, set up as `template`
    /// (its `dir` is replaced by each tenant's folder).
    pub fn new(data_dir: impl Into<PathBuf>, template: Options) -> LogOpener {
        LogOpener {
            data_dir: data_dir.into(),
            template,
            blocks: None,
            logless: parking_lot::Mutex::default(),
        }
    }

    /// Keeps every tenant's log blocks and manifest in `blocks` (a bucket:
    /// `<tenant>/logs/`) instead of its log folder, which keeps the WAL.
    pub fn with_blocks(mut self, blocks: Arc<dyn TenantBlocks>) -> LogOpener {
        self.blocks = Some(blocks);
        self
    }

    /// The folder of `tenant`'s log store.
    pub fn dir_of(&self, tenant: &Tenant) -> PathBuf {
        tenant_dir(&self.data_dir, tenant).join(LOGS_DIR)
    }
}

#[async_trait]
impl TenantStore for LogStore {
    fn health(&self) -> ComponentHealth {
        LogStore::health(self)
    }

    async fn shutdown(&self) {
        LogStore::shutdown(self).await
    }
}

fn storage_error(dir: &std::path::Path, e: crate::Error) -> sightline_store::Error {
    sightline_store::Error::Storage { location: dir.display().to_string(), detail: e.to_string() }
}

#[async_trait]
impl TenantOpener for LogOpener {
    type Store = LogStore;

    /// Tenants with a log folder (a tenant with traces only has none).
    async fn existing(&self) -> Result<Vec<Tenant>, sightline_store::Error> {
        let root = self.data_dir.clone();
        let tenants = tokio::task::spawn_blocking(move || tenant_folders(&root))
            .await
            .map_err(|e| sightline_store::Error::Task(e.to_string()))??;
        let mut out: Vec<Tenant> = tenants.into_iter().filter(|t| self.dir_of(t).is_dir()).collect();
        // Tenants other nodes wrote logs of: this node serves them too.
        if let Some(blocks) = &self.blocks {
            for tenant in blocks.tenants().await? {
                let known_logless =
                    self.logless.lock().get(&tenant).is_some_and(|at| at.elapsed() < LOGLESS_RECHECK);
                if out.contains(&tenant) || known_logless {
                    continue;
                }
                if blocks.has(&tenant).await? {
                    self.logless.lock().remove(&tenant);
                    out.push(tenant);
                } else {
                    self.logless.lock().insert(tenant, Instant::now());
                }
            }
        }
        Ok(out)
    }

    async fn exists(&self, tenant: &Tenant) -> Result<bool, sightline_store::Error> {
        if self.dir_of(tenant).is_dir() {
            return Ok(true);
        }
        match &self.blocks {
            Some(blocks) => blocks.has(tenant).await,
            None => Ok(false),
        }
    }

    async fn open(&self, tenant: &Tenant) -> Result<LogStore, sightline_store::Error> {
        let mut options = self.template.clone();
        options.dir = self.dir_of(tenant);
        let dir = options.dir.clone();
        if let Some(blocks) = &self.blocks {
            options.storage = Some(blocks.storage(tenant, &dir).await?);
        }
        LogStore::open(options).await.map_err(|e| storage_error(&dir, e))
    }
}

/// Each tenant's log heads only ([`LogStore::find_head_logs`]): what a
/// node sharing a bucket serves its peers (`/internal/logs/head`), who
/// read the flushed blocks themselves.
pub struct LogHeadReaders(pub Arc<sightline_store::Tenants<LogOpener>>);

#[async_trait]
impl sightline_model::LogTenantReaders for LogHeadReaders {
    async fn log_reader(
        &self,
        tenant: &Tenant,
    ) -> Result<Arc<dyn sightline_model::LogReader>, sightline_model::QueryError> {
        // Only tenants open here have a head: no need to look in storage.
        Ok(match self.0.open_store(tenant) {
            Some(store) => Arc::new(HeadLogReader(store)),
            None => Arc::new(sightline_model::EmptyLogReader),
        })
    }
}

/// One tenant's log heads.
struct HeadLogReader(LogStore);

#[async_trait]
impl sightline_model::LogReader for HeadLogReader {
    async fn find_logs(
        &self,
        query: &sightline_model::LogQuery,
    ) -> Result<sightline_model::LogPage, sightline_model::QueryError> {
        self.0.find_head_logs(query).await
    }

    async fn log_services(&self) -> Result<Vec<String>, sightline_model::QueryError> {
        sightline_model::LogReader::log_services(&self.0).await
    }

    fn subscribe_logs(&self) -> tokio::sync::broadcast::Receiver<Arc<sightline_model::LogBatch>> {
        sightline_model::LogReader::subscribe_logs(&self.0)
    }
}
