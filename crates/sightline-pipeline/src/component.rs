use async_trait::async_trait;
use sightline_model::ComponentHealth;

/// Lifecycle of a pipeline stage. `shutdown` stops accepting, flushes what
/// the stage buffers into the next stage, and is safe to call twice.
#[async_trait]
pub trait Component: Send + Sync {
    /// The component's id as written in the config, e.g. `batch` or `otlp/backup`.
    fn id(&self) -> &str;

    /// Flushes buffered data downstream and stops background tasks.
    async fn shutdown(&self) {}

    /// Health, for components that can fail on their own (exporters).
    fn health(&self) -> Option<ComponentHealth> {
        None
    }
}
