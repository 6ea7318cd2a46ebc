//! Seed 001's metrics by their names: the `bff_*` Prometheus families its
//! dashboards query, the custom OTel instruments it exports over OTLP, and
//! helpers named like the seed's (`record_session_metrics`,
//! `record_forwardauth_metrics`, ...).
//!
//! ```
//! use sightline_sdk::bff::{Bff, SessionEvent};
//! let telemetry = sightline_sdk::Telemetry::disabled("bff");
//! let bff = Bff::register(&telemetry);
//! bff.record_session_metrics(SessionEvent::Created);
//! bff.record_forwardauth_metrics(std::time::Duration::from_millis(3), "allowed");
//! assert!(telemetry.metrics().render().contains("bff_sessions_created_total 1"));
//! ```
//!
//! | helper | Prometheus (`/metrics`) | OTLP |
//! |---|---|---|
//! | `record_session_metrics` | `bff_sessions_created_total`, `bff_sessions_destroyed_total{reason}`, `bff_active_sessions_total` (a gauge, named as the seed names it) | `bff_session_validation_duration_ms` for `Validated` |
//! | `record_forwardauth_metrics` | `bff_verify_duration_seconds{status}` | `bff_forwardauth_duration_ms{status}`, `bff_auth_requests_total{status}` |
//! | `record_oauth_flow` | `bff_oauth_flow_duration_seconds{flow_type}` | |
//! | `record_session_binding_failure` | `bff_session_binding_failures_total{reason}` | `bff_session_binding_failures_total{reason}` |
//! | `record_token_refresh` | `bff_token_refresh_total{service,status}`, `bff_token_refresh_success_total{user_id}`, `bff_token_refresh_failed_total{reason}` | `bff_token_refresh_duration_ms{service,status}` |
//! | `record_token_exchange`, `record_token_validation`, `record_token_expiry` | `bff_token_exchange_total{grant_type,status}`, `bff_token_validation_total{token_type,status}`, `bff_token_expiry_total{service}` | |
//! | `record_authz` | `bff_authz_requests_total{resource,action,decision}`, `bff_authz_latency_seconds{resource}` | |
//! | `record_redis_operation`, `record_idp_request`, `record_kafka_message` | `bff_redis_operations_total{operation,status}`, `bff_redis_latency_seconds{operation}`, `bff_idp_requests_total{endpoint,status}`, `bff_idp_latency_seconds{endpoint}`, `bff_kafka_messages_total{topic,status}` | |
//! | `set_circuit_breaker`, `record_circuit_break` | `circuit_breaker_status{service}` (0 closed, 1 open, 2 half-open), `circuit_breaks_total{service}` | |
//! | `record_csrf_violation`, `record_rate_limit_violation`, `record_security_event` | `bff_csrf_violations_total{reason}`, `bff_rate_limit_violations_total{client_id}`, `bff_security_events_total{event_type,severity}` | |
//!
//! Background tasks and client metric events keep their generic families
//! (`spans::background_task`, `public_metrics`): with
//! `Options::metrics_prefix("bff_")` those are the seed's
//! `bff_background_tasks_total{task_type,status}`,
//! `bff_background_task_duration_seconds{task_type}` and
//! `bff_public_metrics_total{event}`.
//!
//! Histograms carry the current trace id as an OpenMetrics exemplar when
//! the current span is sampled, so a latency bucket links to a trace.
//!
//! Label values are what you pass: keep them bounded (the seed's
//! `user_id` and `client_id` labels are as the seed has them; every
//! distinct value is a series).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::Telemetry;
use crate::metrics::{Exemplar, ExemplarHistogram, Labels, current_exemplar, exemplar_histogram};

type Counters = Family<Labels, Counter>;
type Hists = Family<Labels, ExemplarHistogram, fn() -> ExemplarHistogram>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn status(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

/// What happened to a session ([`Bff::record_session_metrics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent<'a> {
    /// A session was created (login).
    Created,
    /// A session ended for `reason` (`logout`, `expired`, `revoked`...).
    Destroyed(&'a str),
    /// A session was checked in `Duration`, valid or not.
    Validated(Duration, bool),
}

/// A circuit breaker's state ([`Bff::set_circuit_breaker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls pass (0).
    Closed,
    /// Calls are refused (1).
    Open,
    /// Trial calls pass (2).
    HalfOpen,
}

struct Otel {
    forwardauth: OtelHistogram<f64>,
    session_validation: OtelHistogram<f64>,
    auth_requests: OtelCounter<u64>,
    token_refresh: OtelHistogram<f64>,
    binding_failures: OtelCounter<u64>,
}

/// The seed 001 families, registered on one [`Telemetry`]. Cheap to clone.
#[derive(Clone)]
pub struct Bff {
    inner: std::sync::Arc<Inner>,
}

impl std::fmt::Debug for Bff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bff").finish_non_exhaustive()
    }
}

struct Inner {
    active_sessions: Gauge,
    sessions_created: Counter,
    sessions_destroyed: Counters,
    verify_duration: Hists,
    oauth_flow_duration: Hists,
    binding_failures: Counters,
    token_refresh_success: Counters,
    token_refresh_failed: Counters,
    token_refresh: Counters,
    token_exchange: Counters,
    token_validation: Counters,
    token_expiry: Counters,
    authz_requests: Counters,
    authz_latency: Hists,
    redis_operations: Counters,
    redis_latency: Hists,
    idp_requests: Counters,
    idp_latency: Hists,
    kafka_messages: Counters,
    circuit_status: Family<Labels, Gauge>,
    circuit_breaks: Counters,
    csrf: Counters,
    rate_limit: Counters,
    security_events: Counters,
    otel: Otel,
}

fn hists() -> Hists {
    Family::new_with_constructor(exemplar_histogram as fn() -> ExemplarHistogram)
}

fn observe(h: &Hists, l: Labels, secs: f64, exemplar: Option<Exemplar>) {
    h.get_or_create(&l).observe(secs, exemplar, None);
}

impl Bff {
    /// Registers every family in `telemetry`'s registry and the OTLP
    /// instruments on its meter. Call once per telemetry handle.
    pub fn register(telemetry: &Telemetry) -> Bff {
        let m = telemetry.metrics();
        let counters = |name: &str, help: &str| {
            let f = Counters::default();
            m.register(name, help, f.clone());
            f
        };
        let histograms = |name: &str, help: &str| {
            let f = hists();
            m.register(name, help, f.clone());
            f
        };
        let active_sessions = Gauge::default();
        // A gauge named `..._total` because the seed's dashboards query that name.
        m.register("bff_active_sessions_total", "Sessions currently active", active_sessions.clone());
        let sessions_created = Counter::default();
        m.register("bff_sessions_created", "Sessions created", sessions_created.clone());
        let meter = m.meter();
        let ms = |name: &'static str, help: &'static str| {
            meter.f64_histogram(name).with_unit("ms").with_description(help).build()
        };
        Bff {
            inner: std::sync::Arc::new(Inner {
                active_sessions,
                sessions_created,
                sessions_destroyed: counters("bff_sessions_destroyed", "Sessions ended, by reason"),
                verify_duration: histograms(
                    "bff_verify_duration_seconds",
                    "ForwardAuth session verification latency, by status",
                ),
                oauth_flow_duration: histograms(
                    "bff_oauth_flow_duration_seconds",
                    "OAuth flow duration, by flow type",
                ),
                binding_failures: counters(
                    "bff_session_binding_failures",
                    "Session binding (fingerprint) failures, by reason",
                ),
                token_refresh_success: counters(
                    "bff_token_refresh_success",
                    "Successful token refreshes, by user",
                ),
                token_refresh_failed: counters(
                    "bff_token_refresh_failed",
                    "Failed token refreshes, by reason",
                ),
                token_refresh: counters("bff_token_refresh", "Token refreshes, by service and status"),
                token_exchange: counters("bff_token_exchange", "Token exchanges, by grant type and status"),
                token_validation: counters(
                    "bff_token_validation",
                    "Token validations, by token type and status",
                ),
                token_expiry: counters("bff_token_expiry", "Tokens found expired, by service"),
                authz_requests: counters(
                    "bff_authz_requests",
                    "Authorization (PDP) decisions, by resource, action and decision",
                ),
                authz_latency: histograms("bff_authz_latency_seconds", "PDP latency, by resource"),
                redis_operations: counters(
                    "bff_redis_operations",
                    "Redis operations, by operation and status",
                ),
                redis_latency: histograms("bff_redis_latency_seconds", "Redis latency, by operation"),
                idp_requests: counters(
                    "bff_idp_requests",
                    "Identity provider requests, by endpoint and status",
                ),
                idp_latency: histograms("bff_idp_latency_seconds", "Identity provider latency, by endpoint"),
                kafka_messages: counters("bff_kafka_messages", "Kafka messages, by topic and status"),
                circuit_status: {
                    let f = Family::<Labels, Gauge>::default();
                    m.register(
                        "circuit_breaker_status",
                        "Circuit breaker state by service: 0 closed, 1 open, 2 half-open",
                        f.clone(),
                    );
                    f
                },
                circuit_breaks: counters("circuit_breaks", "Circuit breaker trips, by service"),
                csrf: counters("bff_csrf_violations", "CSRF check failures, by reason"),
                rate_limit: counters("bff_rate_limit_violations", "Rate limit violations, by client"),
                security_events: counters(
                    "bff_security_events",
                    "Security events, by event type and severity",
                ),
                otel: Otel {
                    forwardauth: ms("bff_forwardauth_duration_ms", "ForwardAuth verification duration"),
                    session_validation: ms(
                        "bff_session_validation_duration_ms",
                        "Session validation duration",
                    ),
                    auth_requests: meter
                        .u64_counter("bff_auth_requests_total")
                        .with_description("ForwardAuth requests")
                        .build(),
                    token_refresh: ms("bff_token_refresh_duration_ms", "Token refresh duration"),
                    binding_failures: meter
                        .u64_counter("bff_session_binding_failures_total")
                        .with_description("Session binding failures")
                        .build(),
                },
            }),
        }
    }

    /// Sessions: created, destroyed (with a reason) or validated.
    pub fn record_session_metrics(&self, event: SessionEvent<'_>) {
        let i = &self.inner;
        match event {
            SessionEvent::Created => {
                i.sessions_created.inc();
                i.active_sessions.inc();
            }
            SessionEvent::Destroyed(reason) => {
                i.sessions_destroyed.get_or_create(&labels(&[("reason", reason)])).inc();
                i.active_sessions.dec();
            }
            SessionEvent::Validated(took, valid) => {
                i.otel.session_validation.record(took.as_secs_f64() * 1e3, &[KeyValue::new("valid", valid)]);
            }
        }
    }

    /// One ForwardAuth verification with its outcome (`allowed`,
    /// `unauthorized`, `error`...).
    pub fn record_forwardauth_metrics(&self, took: Duration, status: &str) {
        let i = &self.inner;
        observe(&i.verify_duration, labels(&[("status", status)]), took.as_secs_f64(), current_exemplar());
        let attrs = [KeyValue::new("status", status.to_owned())];
        i.otel.forwardauth.record(took.as_secs_f64() * 1e3, &attrs);
        i.otel.auth_requests.add(1, &attrs);
    }

    /// One OAuth flow (`authorization_code`, `refresh`, `logout`...).
    pub fn record_oauth_flow(&self, flow_type: &str, took: Duration) {
        observe(
            &self.inner.oauth_flow_duration,
            labels(&[("flow_type", flow_type)]),
            took.as_secs_f64(),
            current_exemplar(),
        );
    }

    /// A session that failed its binding check (fingerprint mismatch...).
    pub fn record_session_binding_failure(&self, reason: &str) {
        self.inner.binding_failures.get_or_create(&labels(&[("reason", reason)])).inc();
        self.inner.otel.binding_failures.add(1, &[KeyValue::new("reason", reason.to_owned())]);
    }

    /// One token refresh for `service`: `Ok(user_id)` or `Err(reason)`.
    pub fn record_token_refresh(&self, service: &str, outcome: Result<&str, &str>, took: Duration) {
        let i = &self.inner;
        let ok = outcome.is_ok();
        match outcome {
            Ok(user) => i.token_refresh_success.get_or_create(&labels(&[("user_id", user)])).inc(),
            Err(reason) => i.token_refresh_failed.get_or_create(&labels(&[("reason", reason)])).inc(),
        };
        i.token_refresh.get_or_create(&labels(&[("service", service), ("status", status(ok))])).inc();
        i.otel.token_refresh.record(
            took.as_secs_f64() * 1e3,
            &[KeyValue::new("service", service.to_owned()), KeyValue::new("status", status(ok))],
        );
    }

    /// One token exchange (`authorization_code`, `refresh_token`, `token-exchange`...).
    pub fn record_token_exchange(&self, grant_type: &str, ok: bool) {
        self.inner
            .token_exchange
            .get_or_create(&labels(&[("grant_type", grant_type), ("status", status(ok))]))
            .inc();
    }

    /// One token validation (`access`, `id`, `refresh`...).
    pub fn record_token_validation(&self, token_type: &str, ok: bool) {
        self.inner
            .token_validation
            .get_or_create(&labels(&[("token_type", token_type), ("status", status(ok))]))
            .inc();
    }

    /// A token found expired for `service`.
    pub fn record_token_expiry(&self, service: &str) {
        self.inner.token_expiry.get_or_create(&labels(&[("service", service)])).inc();
    }

    /// One PDP decision (`allow` / `deny`) and its latency.
    pub fn record_authz(&self, resource: &str, action: &str, decision: &str, took: Duration) {
        let i = &self.inner;
        i.authz_requests
            .get_or_create(&labels(&[("resource", resource), ("action", action), ("decision", decision)]))
            .inc();
        observe(&i.authz_latency, labels(&[("resource", resource)]), took.as_secs_f64(), current_exemplar());
    }

    /// One Redis operation.
    pub fn record_redis_operation(&self, operation: &str, ok: bool, took: Duration) {
        let i = &self.inner;
        i.redis_operations.get_or_create(&labels(&[("operation", operation), ("status", status(ok))])).inc();
        observe(
            &i.redis_latency,
            labels(&[("operation", operation)]),
            took.as_secs_f64(),
            current_exemplar(),
        );
    }

    /// One identity-provider request with its HTTP status (or `error`).
    pub fn record_idp_request(&self, endpoint: &str, status: &str, took: Duration) {
        let i = &self.inner;
        i.idp_requests.get_or_create(&labels(&[("endpoint", endpoint), ("status", status)])).inc();
        observe(&i.idp_latency, labels(&[("endpoint", endpoint)]), took.as_secs_f64(), current_exemplar());
    }

    /// One Kafka message (`sent`, `failed`, `consumed`...).
    pub fn record_kafka_message(&self, topic: &str, status: &str) {
        self.inner.kafka_messages.get_or_create(&labels(&[("topic", topic), ("status", status)])).inc();
    }

    /// A circuit breaker's current state.
    pub fn set_circuit_breaker(&self, service: &str, state: CircuitState) {
        let v = match state {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        };
        self.inner.circuit_status.get_or_create(&labels(&[("service", service)])).set(v);
    }

    /// A circuit breaker tripped.
    pub fn record_circuit_break(&self, service: &str) {
        self.inner.circuit_breaks.get_or_create(&labels(&[("service", service)])).inc();
    }

    /// A CSRF check failed.
    pub fn record_csrf_violation(&self, reason: &str) {
        self.inner.csrf.get_or_create(&labels(&[("reason", reason)])).inc();
    }

    /// A client hit the rate limit.
    pub fn record_rate_limit_violation(&self, client_id: &str) {
        self.inner.rate_limit.get_or_create(&labels(&[("client_id", client_id)])).inc();
    }

    /// A security event (`login_failed`, `token_reuse`...) of a severity.
    pub fn record_security_event(&self, event_type: &str, severity: &str) {
        self.inner
            .security_events
            .get_or_create(&labels(&[("event_type", event_type), ("severity", severity)]))
            .inc();
    }
}
