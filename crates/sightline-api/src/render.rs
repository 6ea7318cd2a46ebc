//! Writing JSON bodies: compact, or indented when a Jaeger client asks with
//! `prettyPrint` (any value but `false`, as Jaeger's `writeJSON` reads it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::ser::{PrettyFormatter, Serializer};

use crate::error::ApiError;
use crate::params::Params;

/// Content type of every JSON body.
pub(crate) const JSON: &str = "application/json";

/// Whether the query asks for indented JSON.
pub(crate) fn pretty(params: &Params<'_>) -> bool {
    params.get("prettyPrint").is_some_and(|v| v != "false")
}

/// A 200 `application/json` response, indented with four spaces (Jaeger's
/// `prettyPrintIndent`) when `pretty`.
pub(crate) fn json<T: Serialize>(value: &T, pretty: bool) -> Result<Response, ApiError> {
    json_with_status(StatusCode::OK, value, pretty)
}

/// Like [`json`], with another status.
pub(crate) fn json_with_status<T: Serialize>(
    status: StatusCode,
    value: &T,
    pretty: bool,
) -> Result<Response, ApiError> {
    let body = if pretty {
        let mut out = Vec::with_capacity(256);
        let mut ser = Serializer::with_formatter(&mut out, PrettyFormatter::with_indent(b"    "));
        value.serialize(&mut ser).map(|()| out)
    } else {
        serde_json::to_vec(value)
    }
    .map_err(|e| ApiError::Internal(format!("failed writing HTTP response: {e}")))?;
    Ok(bytes(status, JSON, body))
}

/// A response with a body and its content type.
pub(crate) fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
