//! Prometheus naming, delta accumulation, and both exporters against a
//! real Prometheus fed the stock Python SDK's counter and histogram.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message as _;
use sightline_model::{
    KeyValue, Metric, MetricBatch, MetricData, MetricsConsumer, Resource, Scope, Temporality, otlp,
};

use super::cumulative::{Accumulator, Folded, Kind, Point, Staged};
use super::names::{label_name, metric_name};
use super::series::base_labels;
use super::*;
use crate::Component as _;

fn metric(name: &str, unit: &str, data: MetricData) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        metadata: Vec::new(),
        data,
        resource: Arc::new(Resource::new(vec![KeyValue::new("service.name", "svc")], 0, String::new())),
        scope: Arc::new(Scope::default()),
    }
}

fn sum(monotonic: bool) -> MetricData {
    MetricData::Sum { points: Vec::new(), temporality: Temporality::Cumulative, monotonic }
}

#[test]
fn names_follow_the_collector_translator() {
    let gauge = || MetricData::Gauge(Vec::new());
    let histogram = || MetricData::Histogram { points: Vec::new(), temporality: Temporality::Cumulative };
    let cases = [
        (metric("http.server.duration", "ms", histogram()), "http_server_duration_milliseconds"),
        (metric("http.server.requests", "{request}", sum(true)), "http_server_requests_total"),
        (metric("system.filesystem.usage", "By", gauge()), "system_filesystem_usage_bytes"),
        (metric("cpu.utilization", "1", gauge()), "cpu_utilization_ratio"),
        (metric("requests_total", "1", sum(true)), "requests_total"),
        (metric("network.io", "By/s", gauge()), "network_io_bytes_per_second"),
        (
            metric("active_directory.ds.replication.network.io", "By", sum(true)),
            "active_directory_ds_replication_network_io_bytes_total",
        ),
        (metric("queue.size", "", sum(false)), "queue_size"),
        (metric("latency", "seconds", gauge()), "latency_seconds"),
        (metric("2xx.responses", "", gauge()), "_2xx_responses"),
        (metric("temperature", "Cel", gauge()), "temperature_celsius"),
    ];
    for (m, want) in cases {
        assert_eq!(metric_name(&m, "", true), want, "{} [{}]", m.name, m.unit);
    }
    let m = metric("http.server.duration", "ms", histogram());
    assert_eq!(metric_name(&m, "app", true), "app_http_server_duration_milliseconds");
    assert_eq!(metric_name(&m, "", false), "http_server_duration");
    assert_eq!(label_name("http.route"), "http_route");
    assert_eq!(label_name("2xx"), "key_2xx");
    assert_eq!(label_name("_private"), "key_private");
    assert_eq!(label_name("__reserved__"), "__reserved__");
    assert_eq!(label_name("größe"), "gr__e", "ASCII only: Prometheus before 3.0 refuses the rest");
}

#[test]
fn labels_join_collisions_and_take_job_and_instance_from_the_resource() {
    let resource = Resource::new(
        vec![
            KeyValue::new("service.name", "api"),
            KeyValue::new("service.namespace", "shop"),
            KeyValue::new("service.instance.id", "api-7"),
            KeyValue::new("host.name", "h1"),
        ],
        0,
        String::new(),
    );
    let attrs = vec![KeyValue::new("a.b", "1"), KeyValue::new("a_b", "2"), KeyValue::new("job", "mine")];
    let t = Translation {
        extra_labels: vec![("env".into(), "prod".into()), ("instance".into(), "x".into())],
        ..Translation::default()
    };
    let mut labels = base_labels(&resource, &attrs, &t);
    labels.sort();
    let want: Vec<(String, String)> =
        [("a_b", "1;2"), ("env", "prod"), ("instance", "api-7"), ("job", "shop/api")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    assert_eq!(labels, want);
    let with_resource = Translation { resource_to_labels: true, ..Translation::default() };
    assert!(base_labels(&resource, &[], &with_resource).contains(&("host_name".into(), "h1".into())));
    let info = series::target_info(&resource, &Translation::default()).unwrap();
    assert!(
        info.contains(&("host_name".into(), "h1".into()))
            && info.contains(&("job".into(), "shop/api".into()))
    );
    assert!(!info.iter().any(|(n, _)| n == "service_name"));
}

/// Delta points add up when they follow on (or leave a gap), start over
/// when they overlap, and a repeated point is not counted twice.
#[test]
fn delta_sums_accumulate_like_the_collector_and_ignore_repeats() {
    let m = metric(
        "hits",
        "",
        MetricData::Sum { points: Vec::new(), temporality: Temporality::Delta, monotonic: true },
    );
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let mut feed = |start: u64, time: u64, value: f64| {
        let mut staged = Staged::default();
        let key = Accumulator::key(&m, "hits_total", Kind::Counter, &[]);
        let out = acc.fold(
            &mut staged,
            key,
            &m,
            "hits_total",
            Kind::Counter,
            &[],
            Point::Number { start, time, value },
            true,
            0,
        );
        acc.commit(staged);
        match out {
            Folded::Point(Point::Number { value, .. }) => Some(value),
            Folded::Skip => None,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(feed(0, 10, 3.0), Some(3.0));
    assert_eq!(feed(10, 20, 4.0), Some(7.0), "follows on");
    assert_eq!(feed(10, 20, 4.0), None, "a retried batch is not counted twice");
    assert_eq!(feed(25, 30, 1.0), Some(8.0), "a gap: nothing measured in between");
    assert_eq!(feed(5, 9, 1.0), None, "older than what is known");
    assert_eq!(feed(28, 40, 2.0), Some(2.0), "overlap: the sender restarted");
}

/// Staged changes apply only on commit: a refused remote-write batch sent
/// again is counted once.
#[test]
fn staged_changes_are_dropped_with_a_refused_batch() {
    let m = metric(
        "hits",
        "",
        MetricData::Sum { points: Vec::new(), temporality: Temporality::Delta, monotonic: true },
    );
    let acc = Accumulator::new(Duration::from_secs(300));
    let key = Accumulator::key(&m, "hits_total", Kind::Counter, &[]);
    for _ in 0..2 {
        let mut staged = Staged::default();
        let out = acc.fold(
            &mut staged,
            key.clone(),
            &m,
            "hits_total",
            Kind::Counter,
            &[],
            Point::Number { start: 0, time: 10, value: 3.0 },
            true,
            0,
        );
        assert_eq!(out, Folded::Point(Point::Number { start: 0, time: 10, value: 3.0 }));
        // Not committed: as if the queue refused the batch.
    }
    assert_eq!(acc.len(), 0);
}

// ------------------------------------------------------- real Prometheus

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SIGHTLINE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv at {}: run .ci/run once (it creates it) or set SIGHTLINE_PYTHON",
        venv.display()
    );
    venv
}

/// Export requests the stock Python SDK encodes for a counter and a
/// histogram over two collections.
fn sdk_exports(temporality: &str, service: &str) -> Vec<MetricBatch> {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/metrics_export.py");
    let out =
        Command::new(python()).arg(script).args([temporality, service]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (1..=2)
        .map(|n| {
            let bytes = bytes::Bytes::from(std::fs::read(dir.path().join(format!("export-{n}.pb"))).unwrap());
            let decoded =
                otlp::decode_metrics_request(ExportMetricsServiceRequest::decode(bytes.clone()).unwrap());
            assert_eq!(decoded.rejected, 0);
            MetricBatch::new(decoded.metrics, bytes)
        })
        .collect()
}

/// A Prometheus server on a free port with the remote-write receiver on,
/// scraping `scrape` every second; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape: std::net::SocketAddr) -> Prometheus {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = dir.path().join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sightline\n    honor_labels: true\n    static_configs:\n      - targets: [\"{scrape}\"]\n"
                ),
            )
            .unwrap();
            let child = match Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => panic!(
                    "cannot run prometheus ({e}); install it with `apt-get install -y --no-install-recommends prometheus` (.ci/run does)"
                ),
            };
            let mut p = Prometheus { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if p.child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken after all: try another
                }
                if get(&format!("{}/-/ready", p.base)).is_some_and(|(status, _)| status == 200) {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = p.child.kill();
        }
        panic!("prometheus did not start");
    }

    /// The instant vector of a PromQL query: (labels, value) pairs.
    fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let url = format!("{}/api/v1/query?query={}", self.base, percent(promql));
        let Some((200, body)) = get(&url) else { return Vec::new() };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (r["metric"].as_object().unwrap().clone(), r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// Waits until `promql` returns exactly one series with `want`.
    fn expect(&self, promql: &str, want: f64) -> serde_json::Map<String, serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql);
            if last.len() == 1 && last[0].1 == want {
                return last.remove(0).0;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{promql}: want one series = {want}, have {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A blocking GET (a fresh runtime: the caller's may be busy).
fn get(url: &str) -> Option<(u16, String)> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        rt.block_on(async {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let req =
                http::Request::get(url.as_str()).body(http_body_util::Full::new(bytes::Bytes::new())).ok()?;
            let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await.ok()?.ok()?;
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.ok()?.to_bytes();
            Some((status, String::from_utf8_lossy(&body).into_owned()))
        })
    })
    .join()
    .ok()
    .flatten()
}

/// The stock Python SDK's counter and histogram, cumulative and delta,
/// reach a real Prometheus both ways — pushed by `prometheusremotewrite`
/// and scraped from `prometheus` — with the Collector's names, labels and
/// values (delta totals accumulated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_counter_and_histogram_reach_a_real_prometheus_by_remote_write_and_scrape() {
    let metrics = Arc::new(crate::Metrics::default());
    let scrape = ScrapeExporter::new(
        "prometheus",
        ScrapeConfig {
            endpoint: Some("127.0.0.1:0".parse().unwrap()),
            translation: Translation { namespace: "scraped".into(), ..Translation::default() },
            metric_expiration: Duration::from_secs(300),
            max_tenants: 64,
        },
        Arc::clone(&metrics),
    )
    .unwrap();
    let prometheus = tokio::task::spawn_blocking({
        let addr = scrape.local_addr().unwrap();
        move || Prometheus::start(addr)
    })
    .await
    .unwrap();
    let queue = tempfile::tempdir().unwrap();
    let remote = RemoteWriteExporter::new(
        "prometheusremotewrite",
        RemoteWriteConfig {
            endpoint: format!("{}/api/v1/write", prometheus.base),
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            translation: Translation::default(),
            metric_expiration: Duration::from_secs(300),
            queue_dir: queue.path().to_owned(),
            queue_max_bytes: 16 << 20,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_tenants: 64,
        },
        Arc::clone(&metrics),
    )
    .unwrap();
    for (temporality, service) in [("cumulative", "checkout"), ("delta", "checkout-delta")] {
        for batch in sdk_exports(temporality, service) {
            remote.consume_metrics(batch.clone()).await.unwrap();
            scrape.consume_metrics(batch).await.unwrap();
        }
    }
    let checks = tokio::task::spawn_blocking(move || {
        for prefix in ["", "scraped_"] {
            for job in ["checkout", "checkout-delta"] {
                let sel = format!("{{job=\"{job}\"}}");
                let labels = prometheus.expect(&format!("{prefix}http_server_requests_total{sel}"), 7.0);
                assert_eq!(labels["http_route"], "/pay");
                assert_eq!(labels["http_request_method"], "POST");
                assert_eq!(labels["instance"], format!("{job}-1"));
                let h = format!("{prefix}http_server_duration_milliseconds");
                prometheus.expect(&format!("{h}_count{sel}"), 3.0);
                prometheus.expect(&format!("{h}_sum{sel}"), 333.0);
                prometheus.expect(&format!("{h}_bucket{{job=\"{job}\",le=\"5\"}}"), 1.0);
                prometheus.expect(&format!("{h}_bucket{{job=\"{job}\",le=\"50\"}}"), 2.0);
                prometheus.expect(&format!("{h}_bucket{{job=\"{job}\",le=\"+Inf\"}}"), 3.0);
                let info = prometheus.expect(&format!("{prefix}target_info{sel}"), 1.0);
                assert_eq!(info["deployment_environment"], "test");
                assert_eq!(info["telemetry_sdk_language"], "python");
            }
        }
        prometheus
    })
    .await
    .unwrap();
    remote.shutdown().await;
    scrape.shutdown().await;
    drop(checks);
}

/// A remote-write target with tenants: records each accepted request's
/// `X-Scope-OrgID` (`None`: no header) and answers 503 to tenant `stuck`
/// while `refuse_stuck` is set.
struct TenantTarget {
    url: String,
    accepted: Arc<parking_lot::Mutex<Vec<Option<String>>>>,
    refused: Arc<std::sync::atomic::AtomicU64>,
    refuse_stuck: Arc<std::sync::atomic::AtomicBool>,
}

impl TenantTarget {
    async fn start() -> TenantTarget {
        use std::sync::atomic::Ordering;
        let accepted = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let refuse_stuck = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (a, r, s) = (Arc::clone(&accepted), Arc::clone(&refused), Arc::clone(&refuse_stuck));
        let app = axum::Router::new().route(
            "/api/v1/write",
            axum::routing::post(move |headers: http::HeaderMap| {
                let org = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let status = if org.as_deref() == Some("stuck") && s.load(Ordering::SeqCst) {
                    r.fetch_add(1, Ordering::SeqCst);
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    a.lock().push(org);
                    http::StatusCode::NO_CONTENT
                };
                async move { status }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TenantTarget { url, accepted, refused, refuse_stuck }
    }

    /// An exporter's config for this target: queue in `queue_dir`, quick
    /// retries, `max_tenants` lanes, no headers.
    fn config(&self, queue_dir: &std::path::Path, max_tenants: usize) -> RemoteWriteConfig {
        RemoteWriteConfig {
            endpoint: self.url.clone(),
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            translation: Translation::default(),
            metric_expiration: Duration::from_secs(300),
            queue_dir: queue_dir.to_owned(),
            queue_max_bytes: 16 << 20,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_tenants,
        }
    }

    /// Waits until `cond` holds for the accepted org ids.
    async fn wait_accepted(&self, what: &str, cond: impl Fn(&[Option<String>]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond(&self.accepted.lock()) {
            assert!(Instant::now() < deadline, "{what}: accepted {:?}", self.accepted.lock());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A millisecond in ns: the gauges' times.
const MS: u64 = 1_000_000;

fn gauge_of(tenant: &str, service: &str, at: u64) -> MetricBatch {
    let point = sightline_model::NumberPoint {
        attributes: Vec::new(),
        start_time_unix_nano: 0,
        time_unix_nano: at,
        value: Some(sightline_model::Number::Int(1)),
        exemplars: Vec::new(),
        flags: 0,
    };
    let mut m = metric("queue.depth", "", MetricData::Gauge(vec![point]));
    m.resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", service)], 0, String::new()));
    MetricBatch::from_metrics(vec![m]).with_tenant(sightline_model::Tenant::new(tenant).unwrap())
}

/// Each tenant has its own lane: a tenant the target keeps refusing (503)
/// retries alone while the default tenant's and another's requests are
/// delivered (with no header and with their own `X-Scope-OrgID`, the
/// configured one replaced); its queue survives a restart and is sent
/// once the target takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tenant_retries_on_its_own_lane_and_resumes_after_a_restart() {
    use std::sync::atomic::Ordering;
    let target = TenantTarget::start().await;
    let queue = tempfile::tempdir().unwrap();
    let config = RemoteWriteConfig {
        headers: vec![("X-Scope-OrgID".into(), "configured".into())],
        ..target.config(queue.path(), 64)
    };
    let metrics = Arc::new(crate::Metrics::default());
    let remote = RemoteWriteExporter::new("rw", config.clone(), Arc::clone(&metrics)).unwrap();
    for i in 1..=3 {
        remote.consume_metrics(gauge_of("stuck", "s", i * MS)).await.unwrap();
    }
    // Refused at least twice before the others are even sent: they must
    // not wait behind it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while target.refused.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "tenant stuck was never refused: sent without its header? {:?}",
            target.accepted.lock()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    remote.consume_metrics(gauge_of("team-a", "a", MS)).await.unwrap();
    remote.consume_metrics(gauge_of(sightline_model::Tenant::DEFAULT, "d", MS)).await.unwrap();
    target
        .wait_accepted("team-a and the default tenant past the stuck one", |ids| {
            ids.contains(&Some("team-a".into())) && ids.contains(&Some("configured".into()))
        })
        .await;
    assert!(!target.accepted.lock().contains(&Some("stuck".into())));
    let health = remote.health().unwrap();
    assert!(health.detail.contains("tenant stuck: HTTP 503"), "{}", health.detail);
    remote.shutdown().await;
    assert!(queue.path().join("tenants/stuck").is_dir());

    // A restart reopens the stuck tenant's queue; once the target takes
    // it, all three requests arrive with the tenant's header.
    target.refuse_stuck.store(false, Ordering::SeqCst);
    let remote = RemoteWriteExporter::new("rw", config, Arc::clone(&metrics)).unwrap();
    target
        .wait_accepted("the stuck tenant's queue after a restart", |ids| {
            ids.iter().filter(|id| id.as_deref() == Some("stuck")).count() == 3
        })
        .await;
    remote.shutdown().await;
}

/// The tenants kept apart follow `--max-tenants` (the config's
/// `max_tenants`), not a constant: with 2, the default tenant and one more
/// get queues, a third is refused retryably, naming the flag; the scrape
/// exporter keeps that many tenants' series too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_an_exporter_keeps_apart_follow_max_tenants() {
    let target = TenantTarget::start().await;
    let queue = tempfile::tempdir().unwrap();
    let metrics = Arc::new(crate::Metrics::default());
    let remote =
        RemoteWriteExporter::new("rw", target.config(queue.path(), 2), Arc::clone(&metrics)).unwrap();
    remote.consume_metrics(gauge_of(sightline_model::Tenant::DEFAULT, "d", MS)).await.unwrap();
    remote.consume_metrics(gauge_of("team-a", "a", MS)).await.unwrap();
    match remote.consume_metrics(gauge_of("team-b", "b", MS)).await {
        Err(sightline_model::ConsumeError::Overloaded { reason, .. }) => {
            assert!(reason.contains("2 tenants") && reason.contains("--max-tenants"), "{reason}");
        }
        other => panic!("a third tenant must be refused retryably: {other:?}"),
    }
    target
        .wait_accepted("the two tenants", |ids| ids.contains(&None) && ids.contains(&Some("team-a".into())))
        .await;
    remote.shutdown().await;

    let scrape = ScrapeExporter::new(
        "prometheus",
        ScrapeConfig {
            endpoint: None,
            translation: Translation::default(),
            metric_expiration: Duration::from_secs(300),
            max_tenants: 1,
        },
        metrics,
    )
    .unwrap();
    scrape.consume_metrics(gauge_of(sightline_model::Tenant::DEFAULT, "d", MS)).await.unwrap();
    assert!(matches!(
        scrape.consume_metrics(gauge_of("team-a", "a", MS)).await,
        Err(sightline_model::ConsumeError::Overloaded { .. })
    ));
}
