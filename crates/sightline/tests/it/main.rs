//! The one integration-test binary: each module starts the real
//! `sightline` binary on free loopback ports and drives it from outside.
//!
//! - `harness`: start/stop/kill the server, OTLP request builders, HTTP helpers.
//! - `python_clients`: the stock OpenTelemetry Python SDK (seeds 002 and 003).
//! - `http_bodies`: raw OTLP/HTTP bodies — JSON, gzip, partial success, bad input.
//! - `crash`: kill -9 during ingest; every acknowledged span survives.
//! - `fuzz`: generated query parameters against the API (property-based).
//! - `lifecycle`: config errors, SIGTERM, restart, health, lock, metrics.
//! - `hostile`: issue 16's hostile input — amplifying bodies, stalled and
//!   idle connections, descriptor exhaustion, a store that refuses writes.
//! - `security`: tokens, tenants (and TLS) with the stock Python SDK and the
//!   query API.
//! - `logs_metrics`: OTLP logs and metrics from the stock Python SDK (no
//!   404s), their trace context, the scrape page and remote write to a real
//!   Prometheus.
//! - `collector`: the collector role — forwarding through an outage,
//!   redaction of stored data, the memory limiter under overload.
//! - `tenants`: tenants by `X-Scope-OrgID` and by token never see each
//!   other's data (every query endpoint, span metrics, dependencies), across
//!   a restart and in a bucket.
//! - `objstore`: nodes sharing one bucket of a real S3 server (SeaweedFS):
//!   each answers for all, kill -9 of one loses nothing acknowledged.
//! - `objstore_disk_loss`: a node's disk lost for good: nothing
//!   acknowledged is lost with `--durability bucket`, at most the
//!   unflushed spans with the default.
//! - `objstore_logs`: log blocks in the shared bucket: served by every
//!   node, two nodes flushing at once, kill -9 loses and doubles nothing.
//! - `peers_listings`: services, operations and tags include live peers' heads.
//! - `peers_logs`: log searches include live peers' log heads, paged
//!   across nodes, each record once; a peer that does not answer is named.
//! - `peers_tls`: peers ask each other over https, verified by `--peer-ca`.
//! - `objstore_lease`: the lease holder killed mid-compaction; a stale holder's commit fails.
//! - `objstore_faults`: a proxy injecting object-store faults (503/500/409,
//!   held connections, refused connections) while a node ingests and
//!   answers queries; nothing acknowledged is lost.

mod collector;
mod crash;
mod fuzz;
mod harness;
mod hostile;
mod http_bodies;
mod lifecycle;
mod logs_metrics;
mod objstore;
mod objstore_disk_loss;
mod objstore_faults;
mod objstore_lease;
mod objstore_logs;
mod peers;
mod peers_listings;
mod peers_logs;
mod peers_tail;
mod peers_tls;
mod python_clients;
mod security;
mod tenants;
