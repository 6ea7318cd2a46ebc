//! What keeps web pages from using a browser as a way in.
//!
//! - **Host check (DNS rebinding).** A page on `evil.example` can make its
//!   name resolve to 127.0.0.1 and then talk to a local server as its own
//!   origin; the one thing it cannot change is the `Host` header, which
//!   still says `evil.example`. Every listener therefore answers only
//!   requests addressed to an IP address, `localhost` (and `*.localhost`),
//!   or a configured name (`--allowed-hosts`); others get 421 (gRPC:
//!   `PERMISSION_DENIED`). Requests without a host (HTTP/1.0) pass: no
//!   browser sends those.
//! - **Response headers** on the API and UI: `nosniff`, no referrer, no
//!   framing, and a restrictive Content-Security-Policy unless the response
//!   brings its own (the UI's page does).
//!
//! The receivers' half — no body without an OTLP/Zipkin Content-Type, so no
//! cross-origin "simple" (`no-cors`) POST — lives in the receivers' front.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderName, HeaderValue, StatusCode};

/// Which `Host` names a listener answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Any host (`*`): the check is off.
    pub any: bool,
    /// Names besides IP addresses and `localhost`, lower case. A name
    /// with a leading dot (`.peers.ns.svc`) allows every name under it, as
    /// Django's `ALLOWED_HOSTS` does: a StatefulSet's pods each have their
    /// own name under the headless service's.
    pub names: Vec<String>,
}

impl AllowedHosts {
    /// Parses a comma list of names; `*` allows any host.
    pub fn parse(list: &str) -> Result<AllowedHosts, String> {
        let mut hosts = AllowedHosts::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                hosts.any = true;
            } else if name.trim_start_matches('.').len() > 1
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                hosts.names.push(name.to_ascii_lowercase());
            } else {
                return Err(format!("{name:?} is not a host name"));
            }
        }
        Ok(hosts)
    }

    /// Whether a request with this `Host` (or `:authority`) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host_of(authority);
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == "localhost"
            || host.ends_with(".localhost")
            || self.names.iter().any(|name| match name.strip_prefix('.') {
                Some(domain) => {
                    host == domain || host.strip_suffix(name.as_str()).is_some_and(|sub| !sub.is_empty())
                }
                None => *name == host,
            })
    }
}

/// The host of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The Host check for one listener.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// The names it answers.
    pub allowed: AllowedHosts,
    /// Answer refusals as gRPC statuses.
    pub grpc: bool,
}

async fn check_host(State(check): State<Arc<HostCheck>>, request: Request, next: Next) -> Response {
    let authority = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match authority {
        Some(a) if !check.allowed.allows(&a) => refuse(&a, check.grpc),
        _ => next.run(request).await,
    }
}

fn refuse(authority: &str, grpc: bool) -> Response {
    let host: String = host_of(authority).chars().take(100).collect();
    let message = format!(
        "421 misdirected request: this server does not answer for host {host:?}; \
         add it to --allowed-hosts (a check against DNS rebinding)"
    );
    if grpc {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        if let Ok(m) = HeaderValue::from_str(&message.replace('"', "'")) {
            headers.insert("grpc-message", m);
        }
        return response;
    }
    let mut response = (StatusCode::MISDIRECTED_REQUEST, message).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Wraps `router` in the Host check.
pub fn check_hosts(router: axum::Router, check: HostCheck) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(check), check_host))
}

/// The policy of responses that bring none: nothing may load, nothing may
/// frame them.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn add_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &str); 6] = [
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
        (CONTENT_SECURITY_POLICY, DEFAULT_CSP),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Adds the security headers to every response of `router` (the API and
/// UI), keeping any a handler set itself.
pub fn security_headers(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(add_headers))
}
