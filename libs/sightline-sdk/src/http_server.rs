//! The HTTP server layer for axum (any tower `Service<http::Request>`):
//! one SERVER span per request named `METHOD /route/{template}`, continuing
//! the caller's trace (`traceparent`, `tracestate`) and baggage; current
//! semantic-convention attributes; 5xx marks the span ERROR; Prometheus
//! `http_requests_total{method,endpoint,status}` and
//! `http_request_duration_seconds{method,endpoint}`, and the OTel
//! `http.server.request.duration` histogram. Excluded URLs (default
//! `/health`, `/metrics`) pass through untouched.
//!
//! Add it with `Router::layer` (after the routes) so the route template
//! (axum's `MatchedPath`) is known; unmatched requests are named `METHOD`
//! and counted under `endpoint="unmatched"`, so raw paths never become
//! label values.
//!
//! ```
//! use axum::{Router, routing::get};
//! use sightline_sdk::{Telemetry, http_server::{HttpServerLayer, metrics_router}};
//!
//! let telemetry = Telemetry::disabled("orders");
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .merge(metrics_router(&telemetry))
//!     .layer(HttpServerLayer::new(&telemetry));
//! ```

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Request, Response};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::Telemetry;
use crate::propagation::HeaderExtractor;

/// The layer; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct HttpServerLayer {
    telemetry: Telemetry,
}

impl HttpServerLayer {
    /// A layer recording into `telemetry`.
    pub fn new(telemetry: &Telemetry) -> HttpServerLayer {
        HttpServerLayer { telemetry: telemetry.clone() }
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;
    fn layer(&self, inner: S) -> HttpServerService<S> {
        HttpServerService { inner, telemetry: self.telemetry.clone() }
    }
}

/// The service [`HttpServerLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct HttpServerService<S> {
    inner: S,
    telemetry: Telemetry,
}

/// The method as semconv wants it: the known ones, else `_OTHER`.
fn method_name(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

struct State {
    cx: Option<Context>,
    method: &'static str,
    route: Option<String>,
    started: Instant,
}

impl<S, B, R> Service<Request<B>> for HttpServerService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if crate::config::is_excluded(&self.telemetry.settings().excluded_urls, req.uri().path()) {
            // Not traced, and neither is what it does: a probe's Redis
            // PING must not become a root trace of its own (the noise
            // excluded URLs exist to stop). The SDK starts no span under a
            // suppressed context.
            let quiet = Context::current().with_telemetry_suppressed();
            let inner = {
                let _guard = quiet.clone().attach();
                self.inner.call(req)
            };
            return ResponseFuture { inner, quiet: Some(quiet), state: None };
        }
        let started = Instant::now();
        let method = method_name(req.method());
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let cx = self.telemetry.tracer().map(|_| {
            let parent = self.telemetry.extract(&HeaderExtractor(req.headers()));
            let name = match &route {
                Some(r) => format!("{method} {r}"),
                None => method.to_owned(),
            };
            let uri = req.uri();
            let mut attrs = Vec::with_capacity(10);
            attrs.push(KeyValue::new("http.request.method", method));
            if method == "_OTHER" {
                attrs.push(KeyValue::new("http.request.method_original", req.method().as_str().to_owned()));
            }
            attrs.push(KeyValue::new("url.path", uri.path().to_owned()));
            if let Some(q) = uri.query() {
                attrs.push(KeyValue::new("url.query", crate::redact::query(q).into_owned()));
            }
            attrs.push(KeyValue::new("url.scheme", uri.scheme_str().unwrap_or("http").to_owned()));
            if let Some(r) = &route {
                attrs.push(KeyValue::new("http.route", r.clone()));
            }
            attrs.push(KeyValue::new("network.protocol.version", protocol_version(req.version())));
            let host = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
                req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned)
            });
            if let Some(host) = host {
                match host
                    .rsplit_once(':')
                    .and_then(|(h, p)| p.parse::<i64>().ok().map(|p| (h.to_owned(), p)))
                {
                    Some((h, p)) => {
                        attrs.push(KeyValue::new("server.address", h));
                        attrs.push(KeyValue::new("server.port", p));
                    }
                    None => attrs.push(KeyValue::new("server.address", host)),
                }
            }
            if let Some(ua) = req.headers().get(http::header::USER_AGENT).and_then(|h| h.to_str().ok()) {
                attrs.push(KeyValue::new("user_agent.original", ua.to_owned()));
            }
            crate::spans::start(&self.telemetry, name, SpanKind::Server, &parent, attrs)
        });
        let inner = match &cx {
            Some(c) => {
                let _guard = c.clone().attach();
                self.inner.call(req)
            }
            None => self.inner.call(req),
        };
        ResponseFuture {
            inner,
            quiet: None,
            state: Some((self.telemetry.clone(), State { cx, method, route, started })),
        }
    }
}

pin_project! {
    /// The response future of [`HttpServerService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Excluded requests: the suppressed context to poll under.
        quiet: Option<Context>,
        state: Option<(Telemetry, State)>,
    }
}

impl<F, R, E> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(quiet) = this.quiet.as_ref() {
            let _guard = quiet.clone().attach();
            return this.inner.poll(task);
        }
        let result = match this.state.as_ref().and_then(|(_, s)| s.cx.as_ref()) {
            Some(cx) => {
                let _guard = cx.clone().attach();
                ready!(this.inner.poll(task))
            }
            None => ready!(this.inner.poll(task)),
        };
        if let Some((telemetry, state)) = this.state.take() {
            let status = match &result {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 500,
            };
            if let Some(cx) = &state.cx {
                let span = cx.span();
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
                if result.is_err() {
                    span.set_attribute(KeyValue::new("error.type", "_OTHER"));
                    span.set_status(Status::error("service error"));
                } else if status >= 500 {
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                    span.set_status(Status::error(""));
                }
                span.end();
            }
            // The span's context current while recording: its trace id
            // becomes the latency histogram's exemplar.
            let _current = state.cx.clone().map(Context::attach);
            telemetry.metrics().record_http_server(
                state.method,
                state.route.as_deref().unwrap_or("unmatched"),
                status,
                state.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(result)
    }
}

/// `GET /metrics`: `telemetry`'s registry as OpenMetrics (with trace-id
/// exemplars) when the scraper asks for it, as Prometheus does, else as
/// the Prometheus text format 0.0.4 (`curl`, `promtool check metrics`).
pub fn metrics_router<S: Clone + Send + Sync + 'static>(telemetry: &Telemetry) -> axum::Router<S> {
    let metrics = telemetry.metrics().clone();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: http::HeaderMap| {
            let metrics = metrics.clone();
            async move {
                let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                if crate::exposition::wants_openmetrics(accept) {
                    ([(http::header::CONTENT_TYPE, crate::exposition::OPENMETRICS)], metrics.render())
                } else {
                    ([(http::header::CONTENT_TYPE, crate::exposition::TEXT)], metrics.render_text())
                }
            }
        }),
    )
}
