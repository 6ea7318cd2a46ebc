//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! a unary call read by the shared front ([`crate::front::Front::read_grpc`]):
//! the message's bytes are charged as they arrive, inflated within the
//! limit, decoded here (malformed → `INVALID_ARGUMENT`) and, when every
//! span was accepted, written to the WAL as received.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use http::Uri;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::Receiver;
use crate::front::{Protocol, RequestOutcome, Source, grpc_failure, grpc_reply, grpc_unimplemented};
use crate::ingest::Format;

/// The gRPC method path this router answers.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

const SOURCE: Source = Source { receiver: Receiver::NAME, protocol: Protocol::Grpc };

pub(crate) fn router(receiver: Receiver) -> Router {
    Router::new().route(EXPORT_PATH, post(export)).fallback(unknown).with_state(receiver)
}

async fn unknown(State(receiver): State<Receiver>, uri: Uri) -> Response {
    receiver.front.metrics().request(SOURCE, RequestOutcome::Unsupported);
    grpc_unimplemented(uri.path())
}

async fn export(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let metrics = receiver.front.metrics();
    let result = async {
        let incoming = receiver.front.read_grpc(&parts, body).await?;
        receiver.export(SOURCE, Format::Protobuf, incoming.body, incoming.claim, incoming.tenant).await
    }
    .await;
    match result {
        Ok(accepted) => {
            let outcome = if accepted.rejected == 0 { RequestOutcome::Ok } else { RequestOutcome::Partial };
            metrics.request(SOURCE, outcome);
            let partial_success = (accepted.rejected > 0 || !accepted.error_message.is_empty()).then(|| {
                ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(accepted.rejected).unwrap_or(i64::MAX),
                    error_message: accepted.error_message,
                }
            });
            grpc_reply(&ExportTraceServiceResponse { partial_success })
        }
        Err(failure) => {
            metrics.request(SOURCE, failure.outcome());
            grpc_failure(&failure)
        }
    }
}
