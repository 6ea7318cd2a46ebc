//! The logs API: search (`GET /api/logs`), live tail (`GET
//! /api/logs/tail`, server-sent events) and `GET /api/logs/services`, over
//! a [`sightline_model::LogReader`]. Shapes are in the crate docs and the
//! README.

mod dto;
mod params;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use sightline_model::{LogBatch, LogQuery, LogReader, Tenant};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::ApiState;
use crate::dto::Envelope;
use crate::error::ApiError;
use crate::params::Params;
use crate::render::{json, pretty};

/// The log reader of the request's tenant (from the extensions the auth
/// layer sets; the default tenant without one), so no answer mixes
/// tenants.
async fn reader(state: &ApiState, tenant: Option<Extension<Tenant>>) -> Result<Arc<dyn LogReader>, ApiError> {
    let tenant = tenant.map(|Extension(t)| t).unwrap_or_default();
    let readers = state
        .logs
        .as_ref()
        .ok_or_else(|| ApiError::NotImplemented("log storage is not enabled".to_owned()))?;
    Ok(readers.log_reader(&tenant).await?)
}

/// `GET /api/logs`: one page, newest first (on a node sharing a bucket,
/// live peers' log heads too; a peer that did not answer is named in the
/// warnings header).
pub(crate) async fn search(
    State(state): State<ApiState>,
    tenant: Option<Extension<Tenant>>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let params = Params::parse(&raw);
    let query = params::log_query(&params, true)?;
    let tenant = tenant.map(|Extension(t)| t).unwrap_or_default();
    let reader = log_reader(&state, &tenant, &headers).await?;
    let page = reader.find_logs(&query).await?;
    let mut response = json(&dto::Page::new(&page, query.effective_limit()), pretty(&params))?;
    with_warnings(&mut response, reader.as_ref());
    Ok(response)
}

/// The caller's tenant's log reader; on a node sharing a bucket it asks
/// live peers with the caller's credentials.
async fn log_reader(
    state: &ApiState,
    tenant: &Tenant,
    headers: &axum::http::HeaderMap,
) -> Result<Arc<dyn LogReader>, ApiError> {
    let readers = state
        .logs
        .as_ref()
        .ok_or_else(|| ApiError::NotImplemented("log storage is not enabled".to_owned()))?;
    let credentials = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(readers.log_reader_for(tenant, credentials).await?)
}

/// Names in the warnings header what `reader` left out (a peer that did
/// not answer), as the trace APIs' middleware does for theirs.
fn with_warnings(response: &mut Response, reader: &dyn LogReader) {
    if let Some(value) = crate::scope::warnings_header(&reader.warnings()) {
        response.headers_mut().insert(crate::scope::WARNINGS_HEADER, value);
    }
}

/// The search a peer asks for at `/internal/logs/head`: the `/api/logs`
/// parameters (see `LogQuery::to_pairs`).
pub(crate) fn head_query(raw: &str) -> Result<LogQuery, ApiError> {
    params::log_query(&Params::parse(raw), true)
}

/// `GET /api/logs/services`: service names with stored records (on a node
/// sharing a bucket, live peers' too; a peer that did not answer is named
/// in the warnings header).
pub(crate) async fn services(
    State(state): State<ApiState>,
    tenant: Option<Extension<Tenant>>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let tenant = tenant.map(|Extension(t)| t).unwrap_or_default();
    let reader = log_reader(&state, &tenant, &headers).await?;
    let services = reader.log_services().await?;
    let total = services.len();
    let mut response = json(&Envelope::ok(services, total), pretty(&Params::parse(&raw)))?;
    with_warnings(&mut response, reader.as_ref());
    Ok(response)
}

/// `GET /api/logs/tail`: every record acknowledged from now on that
/// matches the filters, one `log` event each (the record as in
/// `/api/logs`). A client too slow for the store's tail buffer gets one
/// `dropped` event and the stream ends, so no client holds memory
/// unboundedly.
pub(crate) async fn tail(
    State(state): State<ApiState>,
    tenant: Option<Extension<Tenant>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let query = params::log_query(&Params::parse(&raw), false)?;
    let rx = reader(&state, tenant).await?.subscribe_logs();
    let events = tail_events(rx, query);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

enum TailState {
    // Boxed: the query is most of the state's size, moved per batch.
    Open(broadcast::Receiver<Arc<LogBatch>>, Box<LogQuery>),
    Closed,
}

fn tail_events(
    rx: broadcast::Receiver<Arc<LogBatch>>,
    query: LogQuery,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let batches = stream::unfold(TailState::Open(rx, Box::new(query)), |state| async move {
        let TailState::Open(mut rx, query) = state else { return None };
        loop {
            match rx.recv().await {
                Ok(batch) => {
                    let events: Vec<Event> = batch
                        .records()
                        .iter()
                        .filter(|r| query.matches(r))
                        .map(|r| {
                            Event::default().event("log").json_data(dto::Record::new(r)).unwrap_or_default()
                        })
                        .collect();
                    if !events.is_empty() {
                        return Some((events, TailState::Open(rx, query)));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let data = serde_json::json!({
                        "reason": format!("client too slow: {missed} batches were not sent; reconnect to resume")
                    });
                    let event = Event::default().event("dropped").data(data.to_string());
                    return Some((vec![event], TailState::Closed));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    futures_util::StreamExt::flat_map(batches, |events| stream::iter(events.into_iter().map(Ok)))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use sightline_model::{KeyValue, LogRecord, Resource, Scope, Value};

    use super::*;

    fn batch(body: &str) -> Arc<LogBatch> {
        let record = LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 1,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Value::Str(body.into()),
            attributes: Vec::<KeyValue>::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            resource: Arc::new(Resource::new(Vec::new(), 0, String::new())),
            scope: Arc::new(Scope::default()),
        };
        Arc::new(LogBatch::from_records(vec![record]))
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_gets_a_final_event_and_is_dropped() {
        let (tx, rx) = broadcast::channel(2);
        let mut events = Box::pin(tail_events(rx, LogQuery::default()));
        tx.send(batch("one")).unwrap();
        assert!(events.next().await.is_some(), "a client that keeps up gets records");
        // Three more batches into a buffer of two before the client reads.
        for body in ["two", "three", "four"] {
            tx.send(batch(body)).unwrap();
        }
        let last = events.next().await.unwrap().unwrap();
        assert!(format!("{last:?}").contains("dropped"), "{last:?}");
        assert!(events.next().await.is_none(), "the stream ends after the final event");
        // The client's receiver is gone: nothing is buffered for it any more.
        assert_eq!(tx.receiver_count(), 0);
    }
}
