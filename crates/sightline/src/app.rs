//! All wiring and start order of `sightline serve`, in one place.
//!
//! Start: open the store (replaying the WAL), bind every listener, serve,
//! then report ready. Stop (SIGTERM or Ctrl-C): stop accepting, let
//! in-flight requests finish, flush the store, exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use sightline_model::{
    ComponentHealth, LogTenantReaders, LogsConsumer, MemoryBudget, TenantReaders, TracesConsumer,
};
use sightline_store::{LocalBlocks, StoreOpener, TenantBlocks, Tenants};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{MetricsAuth, Settings, Storage};
use sightline_guard::auth::{Policy, Role, TokenFile, protect};
use sightline_guard::browser::{HostCheck, check_hosts, security_headers};
use sightline_guard::serve::serve as serve_listener;
use sightline_guard::tls::TlsAcceptor;

/// How often the token file is checked for changes (SIGHUP checks at once).
const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// Shortest interval between looks for tenants other nodes created in a
/// shared bucket (a read of such a tenant opens it at once anyway).
const TENANT_DISCOVERY_MIN: Duration = Duration::from_secs(30);
/// How often readiness follows the store's health.
const READY_CHECK: Duration = Duration::from_millis(500);

/// Runs the server until a shutdown signal, then shuts down cleanly.
pub(crate) async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Every connection takes a descriptor: use all the hard limit allows.
    let fds = sightline_guard::fdlimit::raise();
    tracing::info!(before = ?fds.before, now = ?fds.now, "open-file limit (None = unlimited)");
    // Credentials before anything else opens: a bad file stops the start.
    let tls = match settings.tls() {
        None => None,
        Some(files) => {
            let acceptor = TlsAcceptor::load(files)?;
            tracing::info!(cert = %acceptor.files().cert.display(), mutual = acceptor.files().client_ca.is_some(), "TLS on every listener");
            Some(acceptor)
        }
    };
    let tokens = match &settings.auth_tokens {
        None => None,
        Some(path) => {
            let file = TokenFile::load(path)?;
            if file.readable_by_others() {
                tracing::warn!(path = %path.display(), "--auth-tokens file is readable by other users; chmod 600 it");
            }
            tracing::info!(path = %path.display(), tokens = file.tokens().len(), "authentication required");
            Some(Arc::new(file))
        }
    };
    let mut registry = Registry::default();
    let store_metrics = Arc::new(sightline_store::Metrics::new(&mut registry));
    let receive_metrics = Arc::new(sightline_receive::front::Metrics::new(&mut registry));
    let api_metrics = Arc::new(sightline_api::Metrics::new(&mut registry));
    let pipeline_metrics = Arc::new(sightline_pipeline::Metrics::new(&mut registry));
    let logstore_metrics = Arc::new(sightline_logstore::Metrics::new(&mut registry));

    // Every memory bound derives from --memory-limit in one place (see
    // `sightline_model::memory`): receivers' in-flight bytes, the head
    // (--head-max-size overrides), queries, and the limiter's soft and hard
    // limits; the limiter publishes pressure on it and the store follows.
    let memory = Arc::new(MemoryBudget::new(settings.memory_limit as u64));
    let mut options = sightline_store::Options::new(&settings.data_dir);
    options.fsync = settings.wal_fsync;
    options.wal_recovery = settings.wal_recovery;
    options.retention = settings.retention;
    options.max_disk_bytes = settings.max_disk;
    options.head_max_bytes = settings.head_max_size();
    options.max_frozen_heads = 1;
    options.memory = Arc::clone(&memory);
    options.block_cache = Arc::new(sightline_store::FooterCache::new(memory.block_cache_bytes()));
    sightline_store::register_block_cache(&mut registry, Arc::clone(&options.block_cache));
    options.head_max_age = settings.max_block_age();
    if let Some(pause) = test_hook("MERGE_COMMIT_PAUSE") {
        options.merge_commit_pause = pause;
    }
    let (store, remote, _storage_lock) = open_store(&settings, options, store_metrics, &mut registry).await?;
    let store = Arc::new(store);
    if let Some(remote) = &remote {
        // The lease holder replays dead nodes' WAL copies (`--durability
        // bucket`) into this node's store, by tenant, as fresh ingest.
        remote.replay_into(Arc::clone(&store) as Arc<dyn sightline_model::TracesConsumer>);
    }
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        storage = ?settings.storage,
        tenants = store.tenants().len(),
        "store open"
    );

    // Logs: their own WAL, head and blocks under <data-dir>/logs (other
    // tenants' under <data-dir>/tenants/<tenant>/logs), with the same
    // fsync policy, retention and (a share of the) disk budget; routed per
    // tenant like traces, under the same --max-tenants.
    // Sharing a bucket: log blocks and their manifest there too (under
    // <tenant>/logs/), the WAL still in the data directory.
    let mut log_options = log_store_options(&settings, &memory, logstore_metrics);
    sightline_store::register_cache_as(
        &mut registry,
        "sightline_logstore",
        "block_cache",
        "log block footers and trace id filters",
        Arc::clone(&log_options.block_cache),
    );
    sightline_store::register_cache_as(
        &mut registry,
        "sightline_logstore",
        "word_cache",
        "log block body word filters",
        Arc::clone(&log_options.word_cache),
    );
    let mut log_opener = sightline_logstore::LogOpener::new(&settings.data_dir, log_options.clone());
    if let Some(remote) = &remote {
        log_options.id_prefix = format!("{}-", remote.node_id());
        // The bound on what a lost disk loses holds for logs too.
        log_options.head_max_age = settings.max_block_age();
        log_opener = sightline_logstore::LogOpener::new(&settings.data_dir, log_options)
            .with_blocks(remote.log_blocks());
    }
    let logs = Arc::new(Tenants::open(log_opener, settings.max_tenants).await.with_context(|| {
        format!("cannot open the log store in {}", settings.data_dir.join("logs").display())
    })?);
    tracing::info!("log store open");
    // In a shared bucket other nodes may create tenants: open them, so this
    // node (holding the lease) compacts them too. One round for both
    // stores, back to back, so they share one LIST of the bucket
    // (`Remote` keeps it for a `--poll-interval`); not on every manifest
    // poll.
    let discovery = match &settings.storage {
        Storage::Object { poll_interval, .. } => {
            let every = (*poll_interval).max(TENANT_DISCOVERY_MIN);
            Some(tokio::spawn(discover_tenants(Arc::clone(&store), Arc::clone(&logs), every)))
        }
        Storage::Local(_) => None,
    };

    // Receivers → pipeline processors → exporters (the store by default).
    let pipeline = sightline_pipeline::build(
        &settings.pipeline,
        sightline_pipeline::Exporters {
            // One store per tenant: each batch goes to its tenant's.
            store: Some(Arc::clone(&store) as Arc<dyn TracesConsumer>),
            logs_store: Some(Arc::clone(&logs) as Arc<dyn LogsConsumer>),
            memory: Some(Arc::clone(&memory)),
        },
        pipeline_metrics,
        &mut registry,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let otlp_entries = pipeline.receivers.get("otlp").cloned().unwrap_or_default();

    let grpc_listener = bind("--otlp-grpc-addr", settings.otlp_grpc_addr).await?;
    let http_listener = bind("--otlp-http-addr", settings.otlp_http_addr).await?;
    let api_listener = bind("--http-addr", settings.http_addr).await?;
    // One front for every receiver: one in-flight budget, one set of limits.
    let front = sightline_receive::front::Front::new(
        sightline_receive::front::Limits {
            max_body_bytes: settings.max_message_size,
            max_inflight_bytes: memory.inflight_bytes(),
            body_timeout: settings.body_timeout,
        },
        receive_metrics,
    );
    // The Zipkin receiver listens only when a pipeline uses it.
    let zipkin = match (
        pipeline.receivers.get("zipkin").and_then(|e| e.traces.as_ref()),
        zipkin_endpoint(&settings),
    ) {
        (Some(entry), Some(addr)) => {
            let receiver = sightline_zipkin::Receiver::new(Arc::clone(entry), front.clone());
            Some((addr, bind("--zipkin-addr", addr).await?, receiver))
        }
        _ => None,
    };

    // The OTLP receiver serves each signal a pipeline takes from it (the
    // default config: all three); others are 404 / UNIMPLEMENTED.
    let mut receiver = sightline_receive::Receiver::signals(front);
    if let Some(entry) = otlp_entries.traces {
        receiver = receiver.traces(entry);
    }
    if let Some(entry) = otlp_entries.logs {
        receiver = receiver.logs(entry);
    }
    if let Some(entry) = otlp_entries.metrics {
        receiver = receiver.metrics(entry);
    }
    // File receivers: each tails its files into the logs pipelines that
    // list it.
    let filelog_metrics = sightline_receive::filelog::Metrics::new(&mut registry);
    let mut filelogs = Vec::new();
    for (id, config) in &settings.pipeline.receivers {
        let Some(c) = config.settings::<sightline_pipeline::receiver::FilelogConfig>() else { continue };
        let Some(entry) = pipeline.receivers.get(id).and_then(|e| e.logs.clone()) else { continue };
        let options = filelog_options(c);
        let receiver =
            sightline_receive::filelog::Filelog::start(id, options, entry, filelog_metrics.clone())
                .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(receiver = %id, include = ?c.include, "tailing log files");
        filelogs.push(receiver);
    }
    if !receiver.serves_any() && zipkin.is_none() && filelogs.is_empty() {
        anyhow::bail!("no pipeline uses a receiver; add \"otlp\" to a pipeline's receivers");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let zipkin_up = Arc::new(AtomicBool::new(true));
    let zipkin_addr = zipkin.as_ref().map(|(addr, _, _)| *addr);
    let grpc_up = Arc::new(AtomicBool::new(true));
    let http_up = Arc::new(AtomicBool::new(true));
    let ready = Arc::new(AtomicBool::new(false));

    let pipeline = Arc::new(pipeline);
    let filelogs = Arc::new(filelogs);
    let health = {
        let store = Arc::clone(&store);
        let logs = Arc::clone(&logs);
        let remote = remote.clone();
        let pipeline = Arc::clone(&pipeline);
        let filelogs = Arc::clone(&filelogs);
        let (grpc_up, http_up, zipkin_up) =
            (Arc::clone(&grpc_up), Arc::clone(&http_up), Arc::clone(&zipkin_up));
        Arc::new(move || {
            let listener = |name: &str, up: &AtomicBool, addr: SocketAddr| ComponentHealth {
                name: name.to_owned(),
                healthy: up.load(Ordering::Acquire),
                detail: if up.load(Ordering::Acquire) {
                    format!("listening on {addr}")
                } else {
                    format!("not serving on {addr}")
                },
            };
            let mut checks = vec![store.health(), logs.health()];
            checks.extend(remote.as_ref().map(|r| r.health()));
            checks.extend([
                listener("otlp_grpc", &grpc_up, settings.otlp_grpc_addr),
                listener("otlp_http", &http_up, settings.otlp_http_addr),
            ]);
            if let Some(addr) = zipkin_addr {
                checks.push(listener("zipkin", &zipkin_up, addr));
            }
            checks.extend(filelogs.iter().map(|f| f.health()));
            // A processor id in several pipelines (the default memory
            // limiter is in all three) reports the same check once.
            for check in pipeline.components.iter().filter_map(|c| c.health()) {
                if !checks.iter().any(|c| c.name == check.name) {
                    checks.push(check);
                }
            }
            checks
        })
    };
    // Sharing a bucket: queries also read live peers' heads, and this
    // node serves its own heads to them (`/internal/head/*`).
    let (readers, internal, log_readers) = match &remote {
        Some(remote) => {
            let ca_pem = match &settings.peer_ca {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read --peer-ca {}", path.display()))?,
                ),
                None => None,
            };
            // Under mutual TLS every node requires a client certificate:
            // peers are shown this node's own (read once, at start).
            let identity_pem = match settings.tls() {
                Some(files) if files.client_ca.is_some() => {
                    let read = |path: &std::path::Path| {
                        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
                    };
                    let mut pem = read(&files.key)?;
                    pem.push(b'\n');
                    pem.extend(read(&files.cert)?);
                    Some(pem)
                }
                _ => None,
            };
            let peers = sightline_objstore::Peers::new(
                Arc::clone(remote),
                sightline_objstore::PeerOptions {
                    static_peers: settings.peers.clone(),
                    own: settings.advertise_addr(),
                    timeout: settings.peer_timeout,
                    https: tls.is_some(),
                    ca_pem,
                    identity_pem,
                },
            )
            .context("cannot set up the client for peer queries")?;
            let peers = Arc::new(peers);
            let readers = sightline_objstore::PeerReaders::new(
                Arc::clone(&store) as Arc<dyn TenantReaders>,
                Arc::clone(&peers),
            );
            let local_logs = Arc::clone(&logs) as Arc<dyn LogTenantReaders>;
            let log_readers = sightline_objstore::PeerLogReaders::new(Arc::clone(&local_logs), peers);
            let heads = sightline_store::HeadReaders(Arc::clone(&store));
            let internal =
                sightline_api::internal::router(Arc::new(heads)).merge(sightline_api::internal::log_router(
                    local_logs,
                    Arc::new(sightline_logstore::LogHeadReaders(Arc::clone(&logs))),
                ));
            (
                Arc::new(readers) as Arc<dyn TenantReaders>,
                internal,
                Arc::new(log_readers) as Arc<dyn LogTenantReaders>,
            )
        }
        None => (
            Arc::clone(&store) as Arc<dyn TenantReaders>,
            axum::Router::new(),
            Arc::clone(&logs) as Arc<dyn LogTenantReaders>,
        ),
    };
    let api = sightline_api::router(sightline_api::ApiState {
        // Each request reads its tenant's data only.
        readers,
        health,
        ready: Arc::clone(&ready),
        registry: Arc::new(registry),
        metrics: api_metrics,
        span_metrics: pipeline.span_metrics.clone(),
        service_graph: pipeline.service_graph.clone(),
        // Each request reads its tenant's logs only.
        logs: Some(log_readers),
    })
    // The series the default metrics pipeline received, for Prometheus
    // to scrape beside Sightline's own /metrics.
    .merge(otlp_metrics_router(pipeline.scrape_page.clone()))
    .merge(internal)
    // The UI's fallback serves its pages; API routes, merged first, win.
    .merge(sightline_ui::router());
    let mut open_paths = vec!["/health", "/ready"];
    // `/metrics/otlp` is never open: it serves the caller's tenant's
    // series, so it needs to know the caller, as the query APIs do.
    if settings.metrics_auth == MetricsAuth::Open {
        open_paths.push("/metrics");
    }
    let api = protect(api, Policy { tokens: tokens.clone(), role: Role::Read, open_paths, grpc: false });
    // Outermost: the Host check (a rebinding page gets 421 before anything
    // else), then the security headers on every API/UI response.
    let hosts = |grpc| HostCheck { allowed: settings.allowed_hosts.clone(), grpc };
    let api = security_headers(check_hosts(api, hosts(false)));
    let writers = |grpc| Policy { tokens: tokens.clone(), role: Role::Write, open_paths: Vec::new(), grpc };

    let options = |name: &'static str| sightline_guard::serve::Options {
        name,
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        tls: tls.clone(),
    };
    let grpc = tokio::spawn(watch_listener(
        "OTLP/gRPC",
        Arc::clone(&grpc_up),
        serve_listener(
            grpc_listener,
            check_hosts(protect(receiver.grpc_router(), writers(true)), hosts(true)),
            options("OTLP/gRPC"),
            stopped(),
        ),
    ));
    let http = tokio::spawn(watch_listener(
        "OTLP/HTTP",
        Arc::clone(&http_up),
        serve_listener(
            http_listener,
            check_hosts(protect(receiver.http_router(), writers(false)), hosts(false)),
            options("OTLP/HTTP"),
            stopped(),
        ),
    ));
    let zipkin_task = zipkin.map(|(_, listener, receiver)| {
        let router = check_hosts(protect(receiver.router(), writers(false)), hosts(false));
        tokio::spawn(watch_listener(
            "Zipkin",
            Arc::clone(&zipkin_up),
            serve_listener(listener, router, options("Zipkin"), stopped()),
        ))
    });
    let reloader = tokio::spawn(reload_on_change(tokens.clone(), tls.clone()));
    let query = tokio::spawn(serve_listener(api_listener, api, options("query API"), stopped()));
    // Ready while every listener serves and the store takes writes: a
    // store that refuses writes (disk full, a failed WAL) is taken out of
    // load balancing by /ready, as /health reports why.
    let readiness = tokio::spawn({
        let (ready, store) = (Arc::clone(&ready), Arc::clone(&store));
        let ups = [grpc_up, http_up, zipkin_up];
        async move {
            let mut tick = tokio::time::interval(READY_CHECK);
            loop {
                tick.tick().await;
                let up = ups.iter().all(|u| u.load(Ordering::Acquire)) && store.health().healthy;
                ready.store(up, Ordering::Release);
            }
        }
    });
    tracing::info!(
        otlp_grpc = %settings.otlp_grpc_addr,
        otlp_http = %settings.otlp_http_addr,
        http = %settings.http_addr,
        "sightline ready"
    );

    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; finishing in-flight ones");
    readiness.abort();
    reloader.abort();
    if let Some(task) = &discovery {
        task.abort();
    }
    ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    let (g, h, q) = tokio::join!(grpc, http, query);
    if let Some(task) = zipkin_task {
        task.await.context("Zipkin server task")?;
    }
    g.context("OTLP/gRPC server task")?;
    h.context("OTLP/HTTP server task")?;
    q.context("query server task")?.context("query server")?;
    let _ = readiness.await;
    for f in filelogs.iter() {
        f.shutdown().await;
    }
    // Processors flush into exporters, then the store flushes to disk.
    pipeline.shutdown().await;
    store.shutdown().await;
    logs.shutdown().await;
    if let Some(remote) = &remote {
        remote.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The log store's share of `--max-disk`: a quarter. Each store applies
/// its limit to its own blocks (the trace store's retention knows only
/// trace blocks), so the one budget is split rather than shared.
pub(crate) const LOG_DISK_SHARE: u64 = 4;

fn log_store_options(
    settings: &Settings,
    memory: &Arc<MemoryBudget>,
    metrics: Arc<sightline_logstore::Metrics>,
) -> sightline_logstore::Options {
    let mut options = sightline_logstore::Options::new(settings.data_dir.join("logs"), Arc::clone(memory));
    options.fsync = settings.wal_fsync;
    options.wal_recovery = settings.wal_recovery;
    options.retention = settings.retention;
    options.max_disk_bytes = settings.max_disk.map(|b| b / LOG_DISK_SHARE);
    options.metrics = metrics;
    // Every tenant's log store shares one head budget and the query slots.
    options.shared = Arc::new(sightline_logstore::Shared::new(settings.max_tenants));
    options
}

/// The store of every tenant, as the binary runs it.
type Store = Tenants<StoreOpener>;

/// Opens the store on its `--storage`: the data directory, another folder
/// (locked like the data directory, since only one process may write a
/// folder), or an object store shared with other nodes (connected and
/// checked first; its heartbeat and lease start once the store is open).
/// Each tenant has its own store: the default tenant's where a store
/// without tenants keeps its data, the others' under `tenants/<tenant>/`
/// (WAL always in the data directory; blocks in the storage, in a bucket
/// under the `<tenant>/` prefix). All share one head budget and the query
/// slots.
async fn open_store(
    settings: &Settings,
    mut options: sightline_store::Options,
    metrics: Arc<sightline_store::Metrics>,
    registry: &mut Registry,
) -> anyhow::Result<(Store, Option<Arc<sightline_objstore::Remote>>, Option<std::fs::File>)> {
    let context = || format!("cannot open the store in {}", settings.data_dir.display());
    let open = |options: sightline_store::Options, blocks: Arc<dyn TenantBlocks>| {
        let opener = StoreOpener::new(options, blocks, settings.max_tenants, metrics);
        Tenants::open(opener, settings.max_tenants)
    };
    match &settings.storage {
        Storage::Local(path) if *path == settings.data_dir => {
            let blocks = Arc::new(LocalBlocks::new(path));
            Ok((open(options, blocks).await.with_context(context)?, None, None))
        }
        Storage::Local(path) => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create --storage {}", path.display()))?;
            let lock_path = path.join("LOCK");
            let lock = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("cannot open {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                anyhow::bail!(
                    "--storage {} is in use by another sightline process (lock file held); \
                     a folder has one writer, share an object store instead",
                    path.display()
                );
            }
            let blocks = Arc::new(LocalBlocks::new(path));
            let store = open(options, blocks).await.with_context(context)?;
            Ok((store, None, Some(lock)))
        }
        Storage::Object { url, node_id, cache_size, poll_interval } => {
            let node = match node_id {
                Some(id) => id.clone(),
                None => sightline_objstore::node_id(&settings.data_dir)
                    .with_context(|| format!("cannot keep a node id in {}", settings.data_dir.display()))?,
            };
            let mut remote_options = sightline_objstore::Options::new(url, &node, &settings.data_dir);
            remote_options.cache_bytes = *cache_size;
            remote_options.poll_interval = *poll_interval;
            remote_options.advertise = settings.advertise_addr();
            remote_options.wal_mirror = settings.durability_bucket;
            remote_options.wal_replay_after = settings.dead_node_after;
            remote_options.lease_ttl = settings.lease_ttl;
            remote_options.idle_poll_interval = settings.idle_poll_interval;
            if let Some(grace) = test_hook("DELETE_GRACE") {
                remote_options.delete_grace = grace;
            }
            if remote_options.advertise.is_none() {
                tracing::warn!(
                    http_addr = %settings.http_addr,
                    "--http-addr is a wildcard and --advertise-addr is not set: other nodes cannot read this \
                     node's head, so its spans reach their queries only once flushed"
                );
            }
            let remote_metrics = Arc::new(sightline_objstore::Metrics::new(registry));
            let remote = Arc::new(
                sightline_objstore::Remote::open(remote_options, remote_metrics)
                    .await
                    .with_context(|| format!("cannot use --storage {url}"))?,
            );
            options.node_id = Some(node.clone());
            let store = open(options, Arc::clone(&remote) as Arc<dyn TenantBlocks>)
                .await
                .with_context(|| format!("cannot open the store on {url} as node {node}"))?;
            remote.start();
            Ok((store, Some(remote), None))
        }
    }
}

/// A test hook: `SIGHTLINE_TEST_<name>_MS` milliseconds, read by debug
/// builds only (a release binary ignores it), so integration tests can
/// shorten the delete grace period, or pause a
/// merge before its commit, without a flag users could stumble on.
fn test_hook(name: &str) -> Option<Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let ms = std::env::var(format!("SIGHTLINE_TEST_{name}_MS")).ok()?.parse().ok()?;
    tracing::warn!(hook = name, ms, "test hook set");
    Some(Duration::from_millis(ms))
}

/// Opens the stores of tenants other nodes created in the shared bucket,
/// traces' and logs', every `every`.
async fn discover_tenants<T, L>(traces: Arc<Tenants<T>>, logs: Arc<Tenants<L>>, every: Duration)
where
    T: sightline_store::TenantOpener,
    L: sightline_store::TenantOpener,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (signal, found) in [("trace", traces.discover().await), ("log", logs.discover().await)] {
            if let Err(e) = found {
                tracing::warn!(error = %e, signal, "looking for new tenants in the bucket failed; will retry");
            }
        }
    }
}

/// Where the API port serves the received OTLP metrics' series.
const OTLP_METRICS_PATH: &str = "/metrics/otlp";

/// `GET /metrics/otlp`: the series of the `prometheus` exporter without an
/// endpoint of its own (none when no pipeline has one), of the caller's
/// tenant only: the auth layer (as for the query APIs) put it in the
/// request's extensions.
fn otlp_metrics_router(page: Option<sightline_pipeline::exporter::prometheus::ScrapePage>) -> axum::Router {
    let Some(page) = page else { return axum::Router::new() };
    axum::Router::new().route(
        OTLP_METRICS_PATH,
        axum::routing::get(move |tenant: Option<axum::Extension<sightline_model::Tenant>>| {
            let body = page.render(&tenant.map(|t| t.0).unwrap_or_default());
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        sightline_pipeline::exporter::prometheus::ScrapePage::CONTENT_TYPE,
                    )],
                    body,
                )
            }
        }),
    )
}

/// A `filelog` receiver's config as the receiver crate takes it.
fn filelog_options(c: &sightline_pipeline::receiver::FilelogConfig) -> sightline_receive::filelog::Options {
    let [timestamp, level, service, message, trace_id, span_id, exception] = c.fields.clone();
    sightline_receive::filelog::Options {
        include: c.include.clone(),
        exclude: c.exclude.clone(),
        start_at_beginning: c.start_at_beginning,
        poll_interval: c.poll_interval,
        max_line_bytes: c.max_log_size,
        fields: sightline_receive::filelog::Fields {
            timestamp,
            level,
            service,
            message,
            trace_id,
            span_id,
            exception,
        },
        default_service: c.service_name.clone(),
        state_path: c.state_path.clone(),
        tenant: c.tenant.clone(),
    }
}

fn zipkin_endpoint(settings: &Settings) -> Option<SocketAddr> {
    settings
        .pipeline
        .receivers
        .values()
        .find_map(|r| r.settings::<sightline_pipeline::receiver::ZipkinConfig>().map(|z| z.endpoint))
}

async fn bind(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "{flag} binds a non-loopback address: reachable from the network");
    }
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {flag} {addr}"))
}

/// Runs a receiver server, marking it down in `/health` if it stops with
/// an error.
async fn watch_listener<E: std::fmt::Display>(
    name: &'static str,
    up: Arc<AtomicBool>,
    server: impl Future<Output = Result<(), E>>,
) {
    if let Err(e) = server.await {
        up.store(false, Ordering::Release);
        tracing::error!(error = %e, "{name} server failed");
    }
}

/// Reloads the token file and the TLS certificate when they change,
/// checked every few seconds and on SIGHUP. Files that no longer load keep
/// the previous tokens or certificate in force.
async fn reload_on_change(tokens: Option<Arc<TokenFile>>, tls: Option<TlsAcceptor>) {
    if tokens.is_none() && tls.is_none() {
        return;
    }
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(RELOAD_CHECK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {}
        }
        if let Some(tokens) = &tokens {
            match tokens.reload_if_changed() {
                Ok(false) => {}
                Ok(true) => {
                    let n = tokens.tokens().len();
                    tracing::info!(path = %tokens.path().display(), tokens = n, "reloaded the token file");
                }
                Err(e) => tracing::error!(error = %e, "kept the previous tokens"),
            }
        }
        if let Some(tls) = &tls {
            match tls.reload_if_changed() {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(cert = %tls.files().cert.display(), "reloaded the TLS certificate")
                }
                Err(e) => tracing::error!(error = %e, "kept the previous TLS certificate"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
