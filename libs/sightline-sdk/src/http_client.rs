//! The HTTP client (reqwest): a CLIENT span per request named `METHOD`,
//! child of the current context, with `http.request.method`,
//! `server.address`, `server.port`, `url.full` (credentials removed) and
//! `http.response.status_code`; `traceparent`, `tracestate` and `baggage`
//! injected; 4xx/5xx and transport errors mark the span ERROR; Prometheus
//! `http_client_requests_total{host,status}` and
//! `http_client_request_duration_seconds{host}`, OTel
//! `http.client.request.duration`.
//!
//! ```no_run
//! # async fn demo(telemetry: sightline_sdk::Telemetry) -> Result<(), reqwest::Error> {
//! let client = sightline_sdk::http_client::HttpClient::new(&telemetry, reqwest::Client::new());
//! let resp = client.send(client.inner().get("http://127.0.0.1:8081/orders")).await?;
//! # let _ = resp; Ok(()) }
//! ```

use std::time::Instant;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use crate::Telemetry;
use crate::propagation::HeaderInjector;

/// A `reqwest::Client` whose requests are traced and counted. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    telemetry: Telemetry,
}

fn method_name(m: &reqwest::Method) -> &'static str {
    match *m {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::DELETE => "DELETE",
        reqwest::Method::PATCH => "PATCH",
        reqwest::Method::HEAD => "HEAD",
        reqwest::Method::OPTIONS => "OPTIONS",
        reqwest::Method::CONNECT => "CONNECT",
        reqwest::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

impl HttpClient {
    /// Wraps `client`.
    pub fn new(telemetry: &Telemetry, client: reqwest::Client) -> HttpClient {
        HttpClient { client, telemetry: telemetry.clone() }
    }

    /// The wrapped client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Builds and sends `request`.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
        self.execute(request.build()?).await
    }

    /// Builds and sends `request` with the trace context but *without*
    /// the baggage: for calls that leave your system (a third-party API),
    /// where entries like a tenant must not travel.
    pub async fn send_without_baggage(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.execute_with(request.build()?, false).await
    }

    /// Sends `request` under a client span.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, reqwest::Error> {
        self.execute_with(request, true).await
    }

    async fn execute_with(
        &self,
        mut request: reqwest::Request,
        baggage: bool,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let started = Instant::now();
        let method = method_name(request.method());
        let url = request.url();
        let host = url.host_str().unwrap_or("").to_owned();
        let mut attrs =
            vec![KeyValue::new("http.request.method", method), KeyValue::new("server.address", host.clone())];
        if let Some(port) = url.port_or_known_default() {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
        let mut full = url.clone();
        let _ = full.set_username("");
        let _ = full.set_password(None);
        if let Some(q) = url.query()
            && let std::borrow::Cow::Owned(redacted) = crate::redact::query(q)
        {
            full.set_query(Some(&redacted));
        }
        attrs.push(KeyValue::new("url.full", full.to_string()));
        let cx = crate::spans::start(&self.telemetry, method, SpanKind::Client, &Context::current(), attrs);
        if self.telemetry.is_enabled() {
            let sent = if baggage { cx.clone() } else { cx.with_cleared_baggage() };
            self.telemetry.inject(&sent, &mut HeaderInjector(request.headers_mut()));
        }
        let result = self.client.execute(request).with_context(cx.clone()).await;
        let span = cx.span();
        let status = match &result {
            Ok(resp) => {
                let code = resp.status().as_u16();
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
                if code >= 400 {
                    span.set_attribute(KeyValue::new("error.type", code.to_string()));
                    span.set_status(Status::error(""));
                }
                Some(code)
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "reqwest::Error"
                };
                span.set_attribute(KeyValue::new("error.type", kind));
                crate::spans::record_error(&span, e);
                None
            }
        };
        span.end();
        self.telemetry.metrics().record_http_client(method, &host, status, started.elapsed().as_secs_f64());
        result
    }
}
