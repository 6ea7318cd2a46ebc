//! OTLP/gRPC: `TraceService/Export`, `LogsService/Export` and
//! `MetricsService/Export` (those a pipeline takes), unary calls read by
//! the shared front ([`crate::front::Front::read_grpc`]): the message's
//! bytes are charged as they arrive, inflated within the limit, decoded
//! here (malformed → `INVALID_ARGUMENT`) and, when every item was
//! accepted, written to the WAL as received. A signal no pipeline takes is
//! `UNIMPLEMENTED`, as the Collector answers for a service it does not
//! register.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use http::Uri;

use crate::Receiver;
use crate::front::{Protocol, RequestOutcome, Signal, Source, grpc_failure, grpc_reply, grpc_unimplemented};
use crate::ingest::Format;
use crate::signals::{Logs, Metrics, OtlpSignal, Traces};

pub(crate) fn router(receiver: Receiver) -> Router {
    let mut router = Router::new();
    if receiver.traces.is_some() {
        router = router.route(Traces::GRPC_PATH, post(export::<Traces>));
    }
    if receiver.logs.is_some() {
        router = router.route(Logs::GRPC_PATH, post(export::<Logs>));
    }
    if receiver.metrics.is_some() {
        router = router.route(Metrics::GRPC_PATH, post(export::<Metrics>));
    }
    router.fallback(unknown).with_state(receiver)
}

fn source(signal: Signal) -> Source {
    Source { receiver: Receiver::NAME, signal, protocol: Protocol::Grpc }
}

async fn unknown(State(receiver): State<Receiver>, uri: Uri) -> Response {
    let signal = match uri.path() {
        p if p.contains(".logs.") => Signal::Logs,
        p if p.contains(".metrics.") => Signal::Metrics,
        _ => Signal::Traces,
    };
    receiver.front.metrics().request(source(signal), RequestOutcome::Unsupported);
    grpc_unimplemented(uri.path())
}

async fn export<S: OtlpSignal>(State(receiver): State<Receiver>, request: Request) -> Response {
    let source = source(S::SIGNAL);
    let Some(consumer) = S::consumer(&receiver) else {
        receiver.front.metrics().request(source, RequestOutcome::Unsupported);
        return grpc_unimplemented(S::GRPC_PATH);
    };
    let (parts, body) = request.into_parts();
    let metrics = receiver.front.metrics();
    let result = async {
        let incoming = receiver.front.read_grpc(&parts, body).await?;
        receiver
            .export::<S>(consumer, source, Format::Protobuf, incoming.body, incoming.claim, incoming.tenant)
            .await
    }
    .await;
    match result {
        Ok(accepted) => {
            let outcome = if accepted.rejected == 0 { RequestOutcome::Ok } else { RequestOutcome::Partial };
            metrics.request(source, outcome);
            grpc_reply(&S::response(accepted.rejected, accepted.error_message))
        }
        Err(failure) => {
            metrics.request(source, failure.outcome());
            grpc_failure(&failure)
        }
    }
}
