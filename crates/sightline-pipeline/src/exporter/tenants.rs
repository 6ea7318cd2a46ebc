//! Each tenant's lane of a queued exporter (OTLP, remote write): its own
//! persistent queue and delivery task, so a tenant's data is sent as that
//! tenant and a tenant the endpoint keeps refusing retries without
//! holding up the others.
//!
//! The default tenant's queue is the exporter's queue folder itself (as
//! before tenants); another tenant's is `<folder>/tenants/<tenant>`, which
//! the default queue's WAL ignores, reopened at start so what was queued
//! is still sent. Each queue may hold the exporter's `queue_max_bytes`; at
//! most `max_tenants` lanes are opened (the store's `--max-tenants`), and a
//! batch of one more tenant is refused, retryably.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sightline_model::{ConsumeError, Tenant};

use super::queue::Queue;

/// The header naming the tenant by default, as Sightline, Tempo, Loki,
/// Mimir and Cortex read it.
pub(crate) const TENANT_HEADER: &str = "X-Scope-OrgID";

/// Starts a tenant's lane on its opened queue.
type Start<L> = Box<dyn Fn(&Tenant, Queue) -> L + Send + Sync>;

/// See the module docs. `L` is one tenant's lane.
pub(crate) struct TenantLanes<L> {
    id: String,
    root: PathBuf,
    max_bytes: u64,
    max_tenants: usize,
    lanes: parking_lot::Mutex<HashMap<Tenant, Arc<L>>>,
    /// Held while a lane opens, so a tenant's queue is opened once.
    opening: tokio::sync::Mutex<()>,
    start: Start<L>,
}

impl<L: Send + Sync + 'static> TenantLanes<L> {
    /// Opens (blocking) the default tenant's queue in `root` and every
    /// tenant's left there by an earlier run, starting each lane with
    /// `start`.
    pub(crate) fn open(
        id: &str,
        root: &Path,
        max_bytes: u64,
        max_tenants: usize,
        start: impl Fn(&Tenant, Queue) -> L + Send + Sync + 'static,
    ) -> Result<TenantLanes<L>, sightline_wal::Error> {
        let mut lanes = HashMap::new();
        let mut open = vec![Tenant::default()];
        if let Ok(dirs) = std::fs::read_dir(root.join("tenants")) {
            open.extend(dirs.flatten().filter_map(|d| Tenant::new(d.file_name().to_str()?).ok()));
        }
        for tenant in open {
            let queue = super::deliver::Lane::open_queue(&dir(root, &tenant), max_bytes)?;
            lanes.insert(tenant.clone(), Arc::new(start(&tenant, queue)));
        }
        Ok(TenantLanes {
            id: id.to_owned(),
            root: root.to_owned(),
            max_bytes,
            max_tenants: max_tenants.max(1),
            lanes: parking_lot::Mutex::new(lanes),
            opening: tokio::sync::Mutex::new(()),
            start: Box::new(start),
        })
    }

    /// The lane of `tenant`, opened at its first batch.
    pub(crate) async fn lane(&self, tenant: &Tenant) -> Result<Arc<L>, ConsumeError> {
        if let Some(lane) = self.lanes.lock().get(tenant) {
            return Ok(Arc::clone(lane));
        }
        let _opening = self.opening.lock().await;
        if let Some(lane) = self.lanes.lock().get(tenant) {
            return Ok(Arc::clone(lane));
        }
        if self.lanes.lock().len() >= self.max_tenants {
            return Err(ConsumeError::Overloaded {
                reason: format!(
                    "exporter {}: queues of {} tenants are open already (--max-tenants)",
                    self.id, self.max_tenants
                ),
                retry_after: Duration::from_secs(30),
            });
        }
        let path = dir(&self.root, tenant);
        let max_bytes = self.max_bytes;
        let queue = tokio::task::spawn_blocking(move || super::deliver::Lane::open_queue(&path, max_bytes))
            .await
            .map_err(|e| e.to_string())
            .and_then(|q| q.map_err(|e| e.to_string()))
            .map_err(|e| ConsumeError::Unavailable {
                reason: format!("exporter {}: cannot open the queue of tenant {tenant}: {e}", self.id),
                retry_after: Duration::from_secs(5),
            })?;
        let lane = Arc::new((self.start)(tenant, queue));
        self.lanes.lock().insert(tenant.clone(), Arc::clone(&lane));
        Ok(lane)
    }

    /// Every open lane, by tenant name (the default tenant first).
    pub(crate) fn all(&self) -> Vec<(Tenant, Arc<L>)> {
        let mut lanes: Vec<_> = self.lanes.lock().iter().map(|(t, l)| (t.clone(), Arc::clone(l))).collect();
        lanes.sort_by(|a, b| (!a.0.is_default(), &a.0).cmp(&(!b.0.is_default(), &b.0)));
        lanes
    }
}

/// Where `tenant`'s queue lives under the exporter's queue folder `root`.
/// Tenant names are plain path components.
fn dir(root: &Path, tenant: &Tenant) -> PathBuf {
    if tenant.is_default() { root.to_owned() } else { root.join("tenants").join(tenant.as_str()) }
}

/// The headers of `tenant`'s requests: the configured ones, and for a
/// tenant other than the default `header: <tenant>` in place of a
/// configured one of that name (the data must land in its own tenant).
/// The default tenant's requests carry the configured headers only.
pub(crate) fn headers_for(
    configured: &[(String, String)],
    header: &str,
    tenant: &Tenant,
) -> Vec<(String, String)> {
    let mut headers = configured.to_vec();
    if !tenant.is_default() {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(header));
        headers.push((header.to_owned(), tenant.as_str().to_owned()));
    }
    headers
}
