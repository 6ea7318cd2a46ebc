//! Live tails: `GET /api/logs/tail` (server-sent events for clients) and
//! the node-to-node tail a peer follows (`/internal/logs/tail`, frames of
//! [`TailFrame`]).
//!
//! On a node sharing a bucket, the client's stream merges this node's
//! records with those of every live peer's tail
//! ([`LogReader::subscribe_peer_logs`]), so a tail through a load
//! balancer shows every node's records. Peers are read by their own
//! tasks: a slow or dead peer never holds up this node's records; a
//! peer's tail that starts or ends is told to the client as a `peer`
//! event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, Stream};
use sightline_model::{
    LogBatch, LogQuery, LogTenantReaders, PeerTailEvent, TAIL_KEEPALIVE, TailFrame, Tenant,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::{dto, params};
use crate::error::ApiError;
use crate::params::Params;

/// Content type of the node-to-node tail.
const FRAMES: &str = "application/x-sightline-tail-frames";
/// How soon a tail of a tenant without a log store here looks again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// `GET /api/logs/tail`: every record acknowledged from now on that
/// matches the filters, one `log` event each (the record as in
/// `/api/logs`), from this node and, sharing a bucket, its live peers
/// (`peer` events say when a peer's records start and stop arriving). A
/// client too slow for the store's tail buffer gets one `dropped` event
/// and the stream ends, so no client holds memory unboundedly.
pub(crate) async fn tail(scope: super::LogScope) -> Result<Response, ApiError> {
    let query = params::log_query(&Params::parse(&scope.raw), false)?;
    let local = scope.reader.subscribe_logs();
    let peers = scope.reader.subscribe_peer_logs(&query);
    // A tenant without a log store here yet: its tail is closed at once.
    // Alone, the stream ends and the client reconnects; with peers it goes
    // on, and looks for this node's store again now and then.
    let again = scope.again;
    let resubscribe: Resubscribe = Box::new(move || {
        let again = again.clone();
        Box::pin(async move { again.reader().await.ok().map(|r| r.subscribe_logs()) })
    });
    let events = tail_events(local, peers, query, resubscribe);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// Subscribes this node's tail again.
type Resubscribe =
    Box<dyn Fn() -> BoxFuture<'static, Option<broadcast::Receiver<Arc<LogBatch>>>> + Send + Sync>;

/// What the client's stream reads from.
struct Sources {
    /// `None` once this node's tail closed (a tenant without a log store).
    local: Option<broadcast::Receiver<Arc<LogBatch>>>,
    resubscribe: Resubscribe,
    /// `None` without peers, or once their supervisor is gone.
    peers: Option<mpsc::Receiver<PeerTailEvent>>,
    query: LogQuery,
}

enum Next {
    Local(Result<Arc<LogBatch>, RecvError>),
    /// Time to look for this node's store again.
    Resubscribe,
    Peer(Option<PeerTailEvent>),
}

fn tail_events(
    local: broadcast::Receiver<Arc<LogBatch>>,
    peers: Option<mpsc::Receiver<PeerTailEvent>>,
    query: LogQuery,
    resubscribe: Resubscribe,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Box::new(Sources { local: Some(local), resubscribe, peers, query });
    let batches = stream::unfold(Some(start), |state| async move {
        let mut src = state?;
        loop {
            let next = tokio::select! {
                next = next_local(&mut src.local) => next,
                next = next_peer(&mut src.peers) => next,
            };
            match next {
                Next::Local(Ok(batch)) | Next::Peer(Some(PeerTailEvent::Records(batch))) => {
                    let events = record_events(&batch, &src.query);
                    if !events.is_empty() {
                        return Some((events, Some(src)));
                    }
                }
                Next::Local(Err(RecvError::Lagged(missed))) => {
                    let data = serde_json::json!({
                        "reason": format!("client too slow: {missed} batches were not sent; reconnect to resume")
                    });
                    let event = Event::default().event("dropped").data(data.to_string());
                    return Some((vec![event], None));
                }
                Next::Local(Err(RecvError::Closed)) => src.local = None,
                Next::Resubscribe => src.local = (src.resubscribe)().await,
                Next::Peer(None) => src.peers = None,
                Next::Peer(Some(PeerTailEvent::Connected { peer })) => {
                    let data = serde_json::json!({ "peer": peer, "connected": true });
                    return Some((vec![Event::default().event("peer").data(data.to_string())], Some(src)));
                }
                Next::Peer(Some(PeerTailEvent::Lost { peer, reason })) => {
                    let data = serde_json::json!({
                        "peer": peer,
                        "connected": false,
                        "reason": format!("peer {peer}'s records are not in this tail until it is back: {reason}"),
                    });
                    return Some((vec![Event::default().event("peer").data(data.to_string())], Some(src)));
                }
            }
            if src.local.is_none() && src.peers.is_none() {
                return None;
            }
        }
    });
    futures_util::StreamExt::flat_map(batches, |events| stream::iter(events.into_iter().map(Ok)))
}

/// This node's next batch; without a tail, a while later, the time to
/// look for one again.
async fn next_local(local: &mut Option<broadcast::Receiver<Arc<LogBatch>>>) -> Next {
    match local {
        Some(rx) => Next::Local(rx.recv().await),
        None => {
            tokio::time::sleep(RESUBSCRIBE).await;
            Next::Resubscribe
        }
    }
}

/// The peers' next event; never without peers.
async fn next_peer(peers: &mut Option<mpsc::Receiver<PeerTailEvent>>) -> Next {
    match peers {
        Some(rx) => Next::Peer(rx.recv().await),
        None => std::future::pending().await,
    }
}

/// One `log` event per record of `batch` that matches `query`.
fn record_events(batch: &LogBatch, query: &LogQuery) -> Vec<Event> {
    batch
        .records()
        .iter()
        .filter(|r| query.matches(r))
        .map(|r| Event::default().event("log").json_data(dto::Record::new(r)).unwrap_or_default())
        .collect()
}

/// `GET /internal/logs/tail?<the /api/logs/tail parameters>`: this node's
/// own tail of the caller's tenant, as [`TailFrame`]s (never its peers':
/// each node follows every peer itself). Subscribed before the answer
/// starts, so a peer that has the answer's head misses nothing acknowledged
/// after it.
pub(crate) async fn peer_tail(
    logs: Arc<dyn LogTenantReaders>,
    tenant: Tenant,
    raw: &str,
) -> Result<Response, ApiError> {
    let query = params::log_query(&Params::parse(raw), false)?;
    let rx = logs.log_reader(&tenant).await?.subscribe_logs();
    let body = Body::from_stream(frames(logs, tenant, rx, query));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(FRAMES))], body).into_response())
}

/// Where a node tail is: following the tenant's store, waiting for one,
/// or ended.
enum FrameState {
    Open(broadcast::Receiver<Arc<LogBatch>>),
    Waiting,
    Ended,
}

fn frames(
    logs: Arc<dyn LogTenantReaders>,
    tenant: Tenant,
    rx: broadcast::Receiver<Arc<LogBatch>>,
    query: LogQuery,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let context = Arc::new((logs, tenant, query));
    stream::unfold(FrameState::Open(rx), move |state| {
        let context = Arc::clone(&context);
        async move {
            let (logs, tenant, query) = &*context;
            let (frame, next) = match state {
                FrameState::Ended => return None,
                // A tenant without a log store has a tail that closes at
                // once: look again, so its first records are followed.
                FrameState::Waiting => {
                    tokio::time::sleep(RESUBSCRIBE).await;
                    match logs.log_reader(tenant).await {
                        Ok(reader) => (TailFrame::KeepAlive, FrameState::Open(reader.subscribe_logs())),
                        Err(e) => (TailFrame::End(e.to_string()), FrameState::Ended),
                    }
                }
                FrameState::Open(mut rx) => loop {
                    match tokio::time::timeout(TAIL_KEEPALIVE, rx.recv()).await {
                        Err(_) => break (TailFrame::KeepAlive, FrameState::Open(rx)),
                        Ok(Ok(batch)) => {
                            let records: Vec<_> =
                                batch.records().iter().filter(|r| query.matches(r)).cloned().collect();
                            if !records.is_empty() {
                                break (TailFrame::Records(records), FrameState::Open(rx));
                            }
                        }
                        Ok(Err(RecvError::Lagged(missed))) => {
                            let why = format!("the reading node fell behind: {missed} batches were not sent");
                            break (TailFrame::End(why), FrameState::Ended);
                        }
                        Ok(Err(RecvError::Closed)) => break (TailFrame::KeepAlive, FrameState::Waiting),
                    }
                },
            };
            Some((Ok(Bytes::from(frame.encode())), next))
        }
    })
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use sightline_model::{LogRecord, Value};

    use super::*;

    fn batch(body: &str) -> Arc<LogBatch> {
        let record = LogRecord::info(1, body);
        Arc::new(LogBatch::from_records(vec![record]))
    }

    /// A tenant that never gets a log store on this node.
    fn no_store() -> Resubscribe {
        Box::new(|| Box::pin(async { None }))
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_gets_a_final_event_and_is_dropped() {
        let (tx, rx) = broadcast::channel(2);
        let mut events = Box::pin(tail_events(rx, None, LogQuery::default(), no_store()));
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

    /// Peers' records and notices reach the client while this node is
    /// quiet; a silent peer does not hold up this node's records.
    #[tokio::test]
    async fn peer_records_and_notices_merge_with_local_ones() {
        let (local_tx, local_rx) = broadcast::channel(8);
        let (peer_tx, peer_rx) = mpsc::channel(8);
        let mut events = Box::pin(tail_events(local_rx, Some(peer_rx), LogQuery::default(), no_store()));
        peer_tx.send(PeerTailEvent::Connected { peer: "node-b".into() }).await.unwrap();
        let text = format!("{:?}", events.next().await.unwrap().unwrap());
        assert!(text.contains("peer") && text.contains("node-b") && text.contains("true"), "{text}");
        peer_tx.send(PeerTailEvent::Records(batch("from-b"))).await.unwrap();
        assert!(format!("{:?}", events.next().await.unwrap().unwrap()).contains("from-b"));
        // The peer says nothing more; this node's records still flow.
        local_tx.send(batch("from-a")).unwrap();
        assert!(format!("{:?}", events.next().await.unwrap().unwrap()).contains("from-a"));
        peer_tx
            .send(PeerTailEvent::Lost { peer: "node-b".into(), reason: "connection reset".into() })
            .await
            .unwrap();
        let text = format!("{:?}", events.next().await.unwrap().unwrap());
        assert!(
            text.contains("node-b") && text.contains("false") && text.contains("connection reset"),
            "{text}"
        );
        // This node's store is gone (a tenant without one): the peers'
        // records still arrive; the stream ends when both are gone.
        drop(local_tx);
        peer_tx.send(PeerTailEvent::Records(batch("later-b"))).await.unwrap();
        assert!(format!("{:?}", events.next().await.unwrap().unwrap()).contains("later-b"));
        drop(peer_tx);
        assert!(events.next().await.is_none());
    }

    /// A tenant whose store on this node appears after the tail started
    /// (its first records here): with peers, the tail finds it and goes
    /// on with its records.
    #[tokio::test]
    async fn a_tail_with_peers_finds_a_store_that_appears_later() {
        let (_peer_tx, peer_rx) = mpsc::channel(8);
        let (later_tx, _) = broadcast::channel::<Arc<LogBatch>>(8);
        let later = later_tx.clone();
        let resubscribe: Resubscribe = Box::new(move || {
            let rx = later.subscribe();
            Box::pin(async move { Some(rx) })
        });
        let closed = broadcast::channel(1).1;
        let mut events = Box::pin(tail_events(closed, Some(peer_rx), LogQuery::default(), resubscribe));
        let sent = tokio::spawn(async move {
            while later_tx.receiver_count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            later_tx.send(batch("first-here")).unwrap();
        });
        assert!(format!("{:?}", events.next().await.unwrap().unwrap()).contains("first-here"));
        sent.await.unwrap();
    }

    /// A peer asking with a bad filter gets a 400 naming it, not a tail.
    #[tokio::test]
    async fn a_node_tail_with_a_bad_filter_is_a_400() {
        let reader: Arc<dyn sightline_model::LogReader> = Arc::new(sightline_model::EmptyLogReader);
        let logs: Arc<dyn LogTenantReaders> = Arc::new(reader);
        match peer_tail(logs, Tenant::default(), "minSeverity=loud").await {
            Err(ApiError::InvalidParam { param, .. }) => assert_eq!(param, "minSeverity"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a tail with a bad filter"),
        }
    }

    /// A node tail sends the records that match the query, and a reader
    /// reads them back.
    #[tokio::test]
    async fn a_node_tail_sends_the_records_that_match() {
        let (tx, rx) = broadcast::channel(8);
        let reader: Arc<dyn sightline_model::LogReader> = Arc::new(sightline_model::EmptyLogReader);
        let logs: Arc<dyn LogTenantReaders> = Arc::new(reader);
        let query = params::log_query(&Params::parse("q=keep"), false).unwrap();
        let mut out = Box::pin(frames(logs, Tenant::default(), rx, query));
        tx.send(batch("drop me")).unwrap();
        tx.send(batch("keep me")).unwrap();
        let mut reader = sightline_model::TailFrameReader::default();
        reader.push(&out.next().await.unwrap().unwrap());
        match reader.next_frame().unwrap() {
            Some(TailFrame::Records(records)) => {
                assert_eq!(records.len(), 1);
                assert_eq!(records[0].body, Value::Str("keep me".into()));
            }
            other => panic!("{other:?}"),
        }
    }
}
