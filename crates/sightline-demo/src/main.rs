//! The demo system: a gateway, an orders service, a worker and a traffic
//! driver, instrumented only through `sightline-sdk`, so that one command
//! (`demo/run.sh`) shows multi-service traces in Sightline.
//!
//! ```text
//! drive ──HTTP──▶ gateway ──HTTP──▶ orders ──NATS──▶ worker
//!                   │ Redis          │ Redis           │ SQLite
//! ```
//!
//! Each service reads its addresses from flags or environment variables
//! (`--help`), and its telemetry settings from the environment the seeds
//! use (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`...). The gateway
//! sets the baggage `tenant` and `user` from the session; every service
//! copies `tenant` onto its spans.

mod drive;
mod gateway;
mod orders;
mod worker;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sightline_sdk::Options;

#[derive(Parser, Debug)]
#[command(name = "sightline-demo", about = "Demo services emitting traces through sightline-sdk")]
struct Cli {
    #[command(subcommand)]
    service: Service,
}

#[derive(Subcommand, Debug)]
enum Service {
    /// The BFF: sessions in Redis, `/api/**` forwarded to orders.
    Gateway(gateway::Args),
    /// Orders: Redis cache, events to NATS.
    Orders(orders::Args),
    /// Consumes order events from NATS into SQLite.
    Worker(worker::Args),
    /// Sends traffic to the gateway.
    Drive(drive::Args),
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Gateway(_) => "gateway",
            Service::Orders(_) => "orders",
            Service::Worker(_) => "worker",
            Service::Drive(_) => "traffic-driver",
        }
    }
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest's TLS comes without a crypto provider when another crate of
    // the build (Sightline's object-store client) asks for
    // `rustls-no-provider`; a client built without one panics. Ours: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let name = cli.service.name();
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| name.to_owned());
    let mut options =
        Options::new(service_name).service_version(env!("CARGO_PKG_VERSION")).baggage_attributes(["tenant"]);
    if name == "gateway" {
        // The BFF: seed 001's bff_background_tasks_total, bff_public_metrics_total.
        options = options.metrics_prefix("bff_");
    }
    let guard = sightline_sdk::init(options).with_context(|| format!("starting telemetry for {name}"))?;
    let telemetry = guard.telemetry();
    let result = match cli.service {
        Service::Gateway(args) => gateway::run(args, telemetry).await,
        Service::Orders(args) => orders::run(args, telemetry).await,
        Service::Worker(args) => worker::run(args, telemetry).await,
        Service::Drive(args) => drive::run(args, telemetry).await,
    };
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "{name} stopped");
    }
    drop(guard); // flushes the last spans and metrics
    result
}
