//! `sightline`: OTLP receivers, a durable trace store and a
//! Jaeger-compatible query API in one binary. See ARCHITECTURE.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod app;
mod config;

/// mimalloc returns freed memory to the OS promptly, so resident memory —
/// what `--memory-limit` and the memory limiter watch — follows what is
/// really in use, and it allocates faster than glibc on this workload.
/// The `override` feature routes C code's `malloc` through it too: zstd
/// (inside Parquet) allocates ~95 KiB contexts per column read or written,
/// and glibc kept what they freed in per-thread arenas, so RSS stayed above
/// the memory limit after compactions ended and the limiter kept refusing.
/// The `v2` feature picks mimalloc 2: it returns freed pages after 10 ms,
/// mimalloc 3 after 1 s. Flush and compaction free tens of MiB a second at
/// saturation, and with mimalloc 3 that memory stayed resident long enough
/// for the memory limiter to refuse: 111k against 200k sustained testbed
/// spans/s over 60 s, with compaction keeping pace.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Even 10 ms was not prompt enough: mimalloc purges a thread's freed pages
/// only when that thread allocates again, so pages freed by a flush or
/// merge on a blocking thread that then idles stayed resident. With the
/// byte-backed head (~80k testbed spans per 16 MiB head, big flushes) RSS
/// sat at ~150 MiB with an empty head and the limiter refused: 102k
/// testbed spans/s with 148 refusals in 30 s, 214k and none with
/// `MIMALLOC_PURGE_DELAY=0` (peak RSS at 10k realistic spans/s 143 → 104
/// MiB, CPU about +8 % there; one run each, 2026-12-07). mimalloc reads
/// its options from the environment when the process starts and offers
/// no safe setter (the workspace forbids `unsafe`), so the process
/// re-executes itself once with the variable set, unless it is already
/// set (then the operator's value wins).
///
/// The price is paid by queries: a read buffer freed by one page read goes
/// back to the kernel and is faulted in again by the next (search p95 over
/// 10M spans 26 → 61 ms in the 08:10 full run). The alternatives were
/// measured on 1M spans and at testbed saturation (same binary, settings
/// interleaved; busy machine, so server CPU seconds and page faults, not
/// latencies, are the figures; BENCHMARKS.md has them) and none keeps both:
/// - any nonzero delay (1 or 10 ms with mimalloc 2; 10 or 50 ms with
///   mimalloc 3, whose arenas any thread purges) cuts a query run's page
///   faults from ~345k to 46–125k, but leaves RSS 25–45 MiB higher under
///   ingest (peak 168–185 against 135–143 MiB, 157–177 MiB at the end
///   against 85–134), next to the 179 MiB soft limit;
/// - `MIMALLOC_PURGE_DECOMMITS=0` (purge with `MADV_FREE`) faults least
///   (10k) but the kernel counts lazily freed pages as resident until it
///   needs them: VmRSS 194 MiB with 153 MiB of it `LazyFree`, so the
///   limiter refused everything, and peak RSS — what operators and the
///   overload tests watch — grows too. Reading `LazyFree` from
///   `/proc/self/smaps_rollup` instead costs milliseconds a read.
///
/// So eager purging stays, and the read path keeps a few buffers itself
/// (`sightline_block`'s `readbuf`).
#[cfg(feature = "mimalloc")]
fn purge_freed_pages_at_once() {
    use std::os::unix::process::CommandExt as _;
    const VAR: &str = "MIMALLOC_PURGE_DELAY";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(VAR, "0").exec();
    // Only reached when exec failed: run on with mimalloc's default.
    eprintln!(
        "warning: could not re-execute with {VAR}=0 ({error}); freed memory is returned to the OS later"
    );
}

/// Sightline: a trace backend in one binary.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// NOTE: parsed once per process; boxing the big variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Receive OTLP traces, store them, and serve the query API.
    Serve(config::ServeArgs),
    /// Check a config file and list every problem with its key and a fix
    /// (exit 0 when valid, 2 otherwise).
    ValidateConfig {
        /// The TOML file `serve --config` would read.
        file: std::path::PathBuf,
    },
    /// Send OTLP load (gRPC or HTTP), or run the decode and query
    /// benchmarks (see bench/run.sh).
    Loadgen(sightline_loadgen::Args),
    /// Check a data directory without changing it: the manifest, every
    /// block byte against its checksums, the WAL, for the default tenant
    /// and every tenant under `tenants/`, traces and logs (exit 0 when
    /// intact, 1 when damage was found, 2 when it cannot be checked). Safe
    /// beside a running server.
    Verify(DataDir),
    /// Make a damaged data directory start cleanly (the server must be
    /// stopped): damaged blocks are salvaged and moved to quarantine/, the
    /// traces lost are reported, a damaged manifest is rebuilt from the
    /// blocks present; every tenant's folder in turn, and its log store
    /// (damaged log blocks quarantined, what they held reported). Moves,
    /// never deletes (exit 0 when done, 2 on error).
    Repair(DataDir),
    /// Look into a bucket shared by nodes (`--storage s3://…`), with the
    /// same `AWS_*`/`GOOGLE_*`/`AZURE_*` variables as `serve`.
    #[command(subcommand)]
    Bucket(BucketCommand),
}

/// `sightline bucket …`.
#[derive(Debug, Subcommand)]
enum BucketCommand {
    /// Every tenant's blocks: id, whether the manifest lists it, spans,
    /// traces, size, time range and compaction level from its meta.json
    /// (exit 0, or 2 when the bucket cannot be read).
    List {
        /// The bucket, as `serve --storage` names it.
        #[arg(long, env = "SIGHTLINE_STORAGE", value_name = "URL")]
        storage: String,
    },
    /// Every block's data against the checksums in its meta.json, read by
    /// range as queries read it; changes nothing (exit 0 when intact, 1
    /// when damage was found, 2 when the bucket cannot be read).
    Verify {
        /// The bucket, as `serve --storage` names it.
        #[arg(long, env = "SIGHTLINE_STORAGE", value_name = "URL")]
        storage: String,
    },
}

/// The data directory `verify` and `repair` work on.
#[derive(Debug, clap::Args)]
struct DataDir {
    /// Where WAL, blocks and manifest live.
    #[arg(long, env = "SIGHTLINE_DATA_DIR", value_name = "DIR", default_value = "./sightline-data")]
    data_dir: std::path::PathBuf,
}

/// The folders `verify` and `repair` check: the data directory (the
/// default tenant's, unnamed so a store without tenants reads as before),
/// then each other tenant's under `tenants/`.
fn tenant_dirs(
    data_dir: &std::path::Path,
) -> Result<Vec<(Option<sightline_model::Tenant>, std::path::PathBuf)>, sightline_store::Error> {
    let mut dirs = vec![(None, data_dir.to_owned())];
    for tenant in sightline_store::tenant_folders(data_dir)? {
        dirs.push((Some(tenant.clone()), sightline_store::tenant_dir(data_dir, &tenant)));
    }
    Ok(dirs)
}

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    purge_freed_pages_at_once();
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(DataDir { data_dir }) => {
            let mut damaged = false;
            for (tenant, dir) in match tenant_dirs(&data_dir) {
                Ok(dirs) => dirs,
                Err(e) => {
                    eprintln!("error: cannot check {}: {e}", data_dir.display());
                    return ExitCode::from(2);
                }
            } {
                if let Some(tenant) = tenant {
                    println!("tenant {tenant} ({}):", dir.display());
                }
                match sightline_store::verify(&dir) {
                    Ok(report) => {
                        println!("{report}");
                        damaged |= report.damage_count() > 0;
                    }
                    Err(e) => {
                        eprintln!("error: cannot check {}: {e}", dir.display());
                        return ExitCode::from(2);
                    }
                }
                let logs = dir.join(sightline_logstore::LOGS_DIR);
                if logs.is_dir() {
                    match sightline_logstore::verify(&logs) {
                        Ok(report) => {
                            println!("{report}");
                            damaged |= report.damage_count() > 0;
                        }
                        Err(e) => {
                            eprintln!("error: cannot check {}: {e}", logs.display());
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            if damaged { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Command::Repair(DataDir { data_dir }) => {
            for (tenant, dir) in match tenant_dirs(&data_dir) {
                Ok(dirs) => dirs,
                Err(e) => {
                    eprintln!("error: cannot repair {}: {e}", data_dir.display());
                    return ExitCode::from(2);
                }
            } {
                if let Some(tenant) = tenant {
                    println!("tenant {tenant} ({}):", dir.display());
                }
                match sightline_store::repair(&dir) {
                    Ok(report) => println!("{report}"),
                    Err(e) => {
                        eprintln!("error: cannot repair {}: {e}", dir.display());
                        return ExitCode::from(2);
                    }
                }
                // After the trace store's repair, which fails while a
                // server holds the data directory.
                let logs = dir.join(sightline_logstore::LOGS_DIR);
                if logs.is_dir() {
                    match sightline_logstore::repair(&logs) {
                        Ok(report) => println!("{report}"),
                        Err(e) => {
                            eprintln!("error: cannot repair {}: {e}", logs.display());
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Bucket(BucketCommand::List { storage }) => match bucket_list(&storage) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Bucket(BucketCommand::Verify { storage }) => match bucket_verify(&storage) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::ValidateConfig { file } => {
            let args = config::ServeArgs::config_file(file.clone());
            match config::Settings::resolve(args) {
                Ok(_) => {
                    println!("{}: valid", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    for problem in &e.0 {
                        eprintln!("error: {problem}");
                    }
                    eprintln!("{}: {} problem(s)", file.display(), e.0.len());
                    ExitCode::from(2)
                }
            }
        }
        Command::Loadgen(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(sightline_loadgen::main(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let settings = match config::Settings::resolve(args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = init_logging(&settings) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(app::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `sightline bucket list`: one line per block, grouped by tenant, and a
/// total per tenant.
fn bucket_list(url: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if !sightline_objstore::is_url(url) {
        anyhow::bail!("--storage {url:?} is not an object store URL (s3://BUCKET/PREFIX, gs://…, az://…)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build()?;
    let blocks = runtime.block_on(async {
        let (store, prefix) = sightline_objstore::connect(url, &[])?;
        let metrics = std::sync::Arc::new(sightline_objstore::Metrics::default());
        let bucket = sightline_objstore::Bucket::new(store, &prefix, url.to_owned(), metrics);
        sightline_objstore::inventory(&bucket).await
    });
    let blocks = blocks.with_context(|| format!("cannot list {url}"))?;
    let time = |ns: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    // Grouped by tenant, then trace blocks before log blocks.
    let mut group: Option<(&str, sightline_objstore::Signal)> = None;
    let mut totals = (0usize, 0u64, 0u64);
    let summary = |(name, signal): (&str, sightline_objstore::Signal),
                   (n, items, bytes): (usize, u64, u64)| {
        let kind = if signal == sightline_objstore::Signal::Logs { "log " } else { "" };
        println!("tenant {name}: {n} listed {kind}blocks, {items} {}, {bytes} bytes", signal.unit());
    };
    for b in &blocks {
        if group != Some((b.tenant.as_str(), b.signal)) {
            if let Some(g) = group {
                summary(g, totals);
            }
            group = Some((&b.tenant, b.signal));
            totals = (0, 0, 0);
        }
        let listed = if b.listed { "listed" } else { "unlisted" };
        match &b.meta {
            Ok(m) => {
                if b.listed {
                    totals = (totals.0 + 1, totals.1 + m.items, totals.2 + b.bytes);
                }
                let traces = m.traces.map(|t| format!("\t{t} traces")).unwrap_or_default();
                println!(
                    "{}\t{}\t{listed}\t{} {}{traces}\t{} bytes\t{} .. {}\tlevel {}",
                    b.tenant,
                    b.id,
                    m.items,
                    b.signal.unit(),
                    b.bytes,
                    time(m.min_unix_nanos),
                    time(m.max_unix_nanos),
                    m.compaction_level
                );
            }
            Err(why) => {
                println!("{}\t{}\t{listed}\t{} bytes\tunreadable: {why}", b.tenant, b.id, b.bytes)
            }
        }
    }
    match group {
        Some(g) => summary(g, totals),
        None => println!("no tenant has a manifest in {url}"),
    }
    Ok(())
}

/// `sightline bucket verify`: one line per block; whether all are intact.
fn bucket_verify(url: &str) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    use std::sync::Arc;
    if !sightline_objstore::is_url(url) {
        anyhow::bail!("--storage {url:?} is not an object store URL (s3://BUCKET/PREFIX, gs://…, az://…)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build()?;
    let metrics = Arc::new(sightline_objstore::Metrics::default());
    let bucket = {
        let _inside = runtime.enter();
        let (store, prefix) = sightline_objstore::connect(url, &[])?;
        Arc::new(sightline_objstore::Bucket::new(store, &prefix, url.to_owned(), Arc::clone(&metrics)))
    };
    let blocks = runtime
        .block_on(sightline_objstore::inventory(&bucket))
        .with_context(|| format!("cannot list {url}"))?;
    // Ranges are read through a small cache of its own, removed after.
    let dir = std::env::temp_dir().join(format!("sightline-bucket-verify-{}", std::process::id()));
    let cache = Arc::new(
        sightline_objstore::Cache::open(&dir, 64 << 20, metrics).context("cannot make a cache folder")?,
    );
    let results = sightline_objstore::verify(&bucket, &cache, &blocks);
    let _ = std::fs::remove_dir_all(&dir);
    let mut intact = true;
    for r in &results {
        let listed = if r.listed { "listed" } else { "unlisted" };
        // Log block lines say so; trace block lines are as they were.
        let kind = if r.signal == sightline_objstore::Signal::Logs { "log block " } else { "" };
        match &r.outcome {
            Ok(()) => println!("{}\t{}\t{listed}\t{kind}intact", r.tenant, r.id),
            Err(why) => {
                intact = false;
                println!("{}\t{}\t{listed}\t{kind}DAMAGED: {why}", r.tenant, r.id);
            }
        }
    }
    let damaged = results.iter().filter(|r| r.outcome.is_err()).count();
    println!("{} blocks checked, {damaged} damaged", results.len());
    Ok(intact)
}

fn init_logging(settings: &config::Settings) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    // object_store logs every retry at INFO: about a line a second for as
    // long as a bucket is down, drowning the one warning that matters (the
    // health check and metrics say it too). Quiet unless asked for by name.
    let text = if settings.log_level.contains("object_store") {
        settings.log_level.clone()
    } else {
        format!("{},object_store=warn", settings.log_level)
    };
    let filter = EnvFilter::try_new(&text).map_err(|e| {
        let setting = config::defs::setting("log-level").map_or_else(String::new, |s| {
            format!(" for {} (env {}, config key {})", s.flag(), s.env(), s.key())
        });
        format!(
            "invalid value {:?}{setting}: {e}; expected e.g. info or sightline_store=debug,info",
            settings.log_level
        )
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match settings.log_format {
        config::LogFormat::Json => builder.json().flatten_event(true).init(),
        config::LogFormat::Text => builder.init(),
    }
    Ok(())
}
