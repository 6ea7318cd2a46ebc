//! The query API's own metrics, recorded by one middleware around every
//! route so handlers stay free of bookkeeping.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Label for requests no route matched, so stray URLs can't grow the
/// label space.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    /// The route template, e.g. `/api/traces/{traceID}`.
    endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
}

/// Query latency by endpoint and request counts by endpoint and status.
/// Endpoints are route templates, never raw paths, to bound cardinality.
#[derive(Debug)]
pub struct Metrics {
    query_duration: Family<EndpointLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    /// Registers `sightline_api_query_duration_seconds` (histogram, `/api/*`
    /// routes only: the Jaeger queries) and `sightline_api_requests_total`
    /// (every route, including `/health` and `/metrics`).
    pub fn new(registry: &mut Registry) -> Self {
        // 0.5 ms … ~16 s: trace-by-id from the head is sub-millisecond, a
        // wide search over cold blocks can take seconds.
        let query_duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register_with_unit(
            "sightline_api_query_duration",
            "Time to answer a Jaeger API query, by route",
            Unit::Seconds,
            query_duration.clone(),
        );
        registry.register(
            "sightline_api_requests",
            "HTTP requests to the query API, by route and status",
            requests.clone(),
        );
        Metrics { query_duration, requests }
    }

    fn record(&self, endpoint: String, status: u16, seconds: Option<f64>) {
        if let Some(seconds) = seconds {
            self.query_duration
                .get_or_create(&EndpointLabels { endpoint: endpoint.clone() })
                .observe(seconds);
        }
        self.requests.get_or_create(&RequestLabels { endpoint, status }).inc();
    }
}

/// Middleware: times the request and counts its outcome.
pub(crate) async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    let endpoint = endpoint.unwrap_or_else(|| UNMATCHED.to_owned());
    let seconds = endpoint.starts_with("/api/").then(|| start.elapsed().as_secs_f64());
    metrics.record(endpoint, response.status().as_u16(), seconds);
    response
}
