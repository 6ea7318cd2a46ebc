//! The `store` exporter of a logs pipeline while the binary has no log
//! store to give it: it accepts and counts records, keeps none, and says
//! so in `/health`, so stock SDKs exporting logs get success instead of a
//! 404 and an error every interval. The binary fills
//! [`crate::Exporters::logs_store`] once a log store exists, and this
//! stand-in is no longer built.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sightline_model::{ComponentHealth, ConsumeError, LogBatch, LogsConsumer};

use crate::Component;

/// Accepts log records without keeping them.
pub(crate) struct UnstoredLogs {
    id: String,
    records: AtomicU64,
}

impl UnstoredLogs {
    pub(crate) fn new(id: &str) -> UnstoredLogs {
        UnstoredLogs { id: id.to_owned(), records: AtomicU64::new(0) }
    }
}

#[async_trait]
impl LogsConsumer for UnstoredLogs {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        self.records.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl Component for UnstoredLogs {
    fn id(&self) -> &str {
        &self.id
    }

    fn health(&self) -> Option<ComponentHealth> {
        Some(ComponentHealth {
            name: format!("exporter {} (logs)", self.id),
            healthy: true,
            detail: format!(
                "no log store in this build: {} log records accepted and not kept",
                self.records.load(Ordering::Relaxed)
            ),
        })
    }
}
