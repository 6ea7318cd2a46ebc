//! `prometheus`: serves the received series for Prometheus to scrape
//! (`GET /metrics` on `endpoint`, text exposition format 0.0.4; without an
//! endpoint the binary serves the [`ScrapePage`] on its API port), like the
//! Collector's exporter of that name: the latest value of each series,
//! delta sums and histograms accumulated into cumulative ones, `job` and
//! `instance` from the resource, one `target_info` per resource, series
//! forgotten after `metric_expiration` without updates.
//!
//! It acknowledges a batch once it is accumulated in memory: a scrape
//! endpoint has nothing to persist, and cumulative senders send totals
//! again with their next export.
//!
//! **Tenants.** Each tenant's series are accumulated apart (a batch's
//! tenant, see [`MetricBatch::tenant`]) and a page shows one tenant's:
//! [`ScrapePage::render`] takes the tenant the caller authenticated as
//! (the binary's `/metrics/otlp`, behind the same auth as the query APIs).
//! An `endpoint` of its own has no authentication, so it serves the
//! default tenant's series only. At most `max_tenants` tenants are kept
//! (`--max-tenants`); a batch of one more is refused (retryable), as the
//! store refuses a tenant beyond it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sightline_model::{ComponentHealth, ConsumeError, MetricBatch, MetricsConsumer, Tenant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cumulative::{Accumulator, Kind, Point, Staged};
use super::series::{self, Sample, base_labels, histogram, push, summary};
use super::{Keep, Translation, translate};
use crate::Component;
use crate::metrics::{Metrics, labels};

/// Settings of a scrape endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    /// Listen address (default `127.0.0.1:8889`); `None`: no listener of
    /// its own, the binary serves [`ScrapeExporter::page`] (the default
    /// metrics pipeline's exporter, on the API port).
    pub endpoint: Option<SocketAddr>,
    /// Names and labels (`const_labels` are the extra labels).
    pub translation: Translation,
    /// Series not updated for this long are no longer served.
    pub metric_expiration: Duration,
    /// Most tenants whose series are kept (`--max-tenants`).
    pub max_tenants: usize,
}

/// The exporter.
pub struct ScrapeExporter {
    id: String,
    addr: Option<SocketAddr>,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    translation: Translation,
    expiration: Duration,
    /// Each tenant's series.
    series: Mutex<HashMap<Tenant, Accumulator>>,
    max_tenants: usize,
    metrics: Arc<Metrics>,
    id: String,
}

impl ScrapeExporter {
    /// Binds `endpoint` (if any) and starts serving; must run inside a
    /// tokio runtime.
    pub fn new(
        id: &str,
        config: ScrapeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<ScrapeExporter, std::io::Error> {
        let state = Arc::new(State {
            translation: config.translation,
            expiration: config.metric_expiration,
            series: Mutex::new(HashMap::new()),
            max_tenants: config.max_tenants.max(1),
            metrics,
            id: id.to_owned(),
        });
        let (stop, mut stopped) = watch::channel(false);
        let Some(endpoint) = config.endpoint else {
            return Ok(ScrapeExporter { id: id.to_owned(), addr: None, state, stop, task: Mutex::new(None) });
        };
        let std_listener = std::net::TcpListener::bind(endpoint)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get({
                let state = Arc::clone(&state);
                move || {
                    // No authentication here: the default tenant only.
                    let body = state.render(&Tenant::default());
                    async move {
                        ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
                    }
                }
            }),
        );
        let name = id.to_owned();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(exporter = %name, error = %e, "scrape endpoint failed");
            }
        });
        Ok(ScrapeExporter { id: id.to_owned(), addr: Some(addr), state, stop, task: Mutex::new(Some(task)) })
    }

    /// The address it listens on, if it has an endpoint of its own.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The scrape page, for a server of the binary's to serve.
    pub fn page(&self) -> ScrapePage {
        ScrapePage(Arc::clone(&self.state))
    }
}

/// The text exposition of a `prometheus` exporter's series, served by
/// whoever holds it (the binary, for an exporter without an endpoint).
#[derive(Clone)]
pub struct ScrapePage(Arc<State>);

impl ScrapePage {
    /// The Content-Type of [`ScrapePage::render`]'s text.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Every live series of `tenant` in the text exposition format 0.0.4
    /// (empty for a tenant that sent none).
    pub fn render(&self, tenant: &Tenant) -> String {
        self.0.render(tenant)
    }

    /// Series held, over all tenants.
    pub fn series(&self) -> usize {
        self.0.series()
    }
}

impl std::fmt::Debug for ScrapePage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ScrapePage").field(&self.0.id).finish()
    }
}

impl State {
    /// Series held, over all tenants.
    fn series(&self) -> usize {
        self.series.lock().values().map(Accumulator::len).sum()
    }

    /// The text exposition of every live series of `tenant`.
    fn render(&self, tenant: &Tenant) -> String {
        let mut families: Vec<(String, Kind, String, Vec<Sample>)> = Vec::new();
        let mut targets: Vec<series::Labels> = Vec::new();
        {
            let mut tenants = self.series.lock();
            let Some(series) = tenants.get_mut(tenant) else { return String::new() };
            // Forget expired series (and the tenant, once it has none).
            series.commit(Staged::default());
            if series.len() == 0 {
                tenants.remove(tenant);
                return String::new();
            }
            for e in series.entries() {
                let base = base_labels(&e.resource, &e.attributes, &self.translation);
                let index = match families.iter().position(|f| f.0 == e.name) {
                    Some(i) if families[i].1 != e.kind => {
                        // The Collector keeps the first type it saw for a
                        // name; Prometheus cannot read one name as two types.
                        self.drop_points("type_conflict", 1);
                        continue;
                    }
                    Some(i) => i,
                    None => {
                        families.push((e.name.clone(), e.kind, e.help.clone(), Vec::new()));
                        families.len() - 1
                    }
                };
                let family = &mut families[index];
                match &e.point {
                    Point::Number { value, .. } => push(&mut family.3, &e.name, &base, None, *value, 0),
                    Point::Histogram(h) => histogram(&mut family.3, &e.name, &base, h),
                    Point::Summary(s) => summary(&mut family.3, &e.name, &base, s),
                }
                if let Some(t) = series::target_info(&e.resource, &self.translation)
                    && !targets.contains(&t)
                {
                    targets.push(t);
                }
            }
        }
        let mut out = String::new();
        if !targets.is_empty() {
            let name = series::target_info_name(&self.translation);
            let _ = writeln!(out, "# HELP {name} Target metadata\n# TYPE {name} gauge");
            let mut samples = Vec::new();
            for t in &targets {
                push(&mut samples, &name, t, None, 1.0, 0);
            }
            write_samples(&mut out, samples);
        }
        families.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind, help, samples) in families {
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&help));
            }
            let _ = writeln!(out, "# TYPE {name} {}", kind.name());
            write_samples(&mut out, samples);
        }
        out
    }

    fn drop_points(&self, reason: &str, n: u64) {
        self.metrics
            .metric_points_dropped
            .get_or_create(&labels(&[("exporter", &self.id), ("reason", reason)]))
            .inc_by(n);
    }
}

fn write_samples(out: &mut String, mut samples: Vec<Sample>) {
    samples.sort_by(|a, b| a.labels.cmp(&b.labels));
    for s in samples {
        let name = s.labels.iter().find(|(n, _)| n == "__name__").map_or("", |(_, v)| v.as_str());
        out.push_str(name);
        let mut first = true;
        for (n, v) in s.labels.iter().filter(|(n, _)| n != "__name__") {
            out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(out, "{n}=\"{}\"", escape_label(v));
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        out.push_str(&format_value(s.value));
        out.push('\n');
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[async_trait]
impl MetricsConsumer for ScrapeExporter {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        let mut drops = Vec::new();
        {
            let mut tenants = self.state.series.lock();
            let max = self.state.max_tenants;
            if !tenants.contains_key(batch.tenant()) && tenants.len() >= max {
                // Expired tenants make room.
                tenants.retain(|_, series| {
                    series.commit(Staged::default());
                    series.len() > 0
                });
                if tenants.len() >= max {
                    return Err(ConsumeError::Overloaded {
                        reason: format!(
                            "exporter {}: series of {max} tenants are kept already (--max-tenants)",
                            self.id
                        ),
                        retry_after: Duration::from_secs(30),
                    });
                }
            }
            let series = tenants
                .entry(batch.tenant().clone())
                .or_insert_with(|| Accumulator::new(self.state.expiration));
            let mut staged = Staged::default();
            translate(batch.metrics(), &self.state.translation, series, &mut staged, Keep::All, &mut drops);
            series.commit(staged);
        }
        for (reason, n) in drops {
            self.state.drop_points(reason, n);
        }
        Ok(())
    }
}

#[async_trait]
impl Component for ScrapeExporter {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn health(&self) -> Option<ComponentHealth> {
        let series = self.state.series();
        let name = format!("exporter {}", self.id);
        let Some(addr) = self.addr else {
            return Some(ComponentHealth {
                name,
                healthy: true,
                detail: format!("{series} series, served on the API port"),
            });
        };
        let serving = self.task.lock().as_ref().is_some_and(|t| !t.is_finished());
        Some(ComponentHealth {
            name,
            healthy: serving,
            detail: if serving {
                format!("{series} series on http://{addr}/metrics")
            } else {
                format!("not serving on {addr}")
            },
        })
    }
}
