//! [`Scoped`]: the state a query handler sees, narrowed to the request's
//! tenant. Handlers that read data take it instead of the whole state, so
//! every read goes to the reader of the tenant the auth layer put in the
//! request's extensions (the default tenant when there is none), and no
//! answer can mix tenants.

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use sightline_model::{SpanReader, Tenant};

use crate::{ApiError, ApiState};

/// See the module docs.
pub(crate) struct Scoped {
    /// Whose data the request reads.
    pub(crate) tenant: Tenant,
    /// That tenant's data.
    pub(crate) reader: Arc<dyn SpanReader>,
    state: ApiState,
}

impl Deref for Scoped {
    type Target = ApiState;

    fn deref(&self) -> &ApiState {
        &self.state
    }
}

impl FromRequestParts<ApiState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Scoped, ApiError> {
        let tenant = parts.extensions.get::<Tenant>().cloned().unwrap_or_default();
        let credentials = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let reader = state.readers.reader_for(&tenant, credentials).await?;
        if let Some(slot) = parts.extensions.get::<WarningSlot>() {
            *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&reader));
        }
        Ok(Scoped { tenant, reader, state: state.clone() })
    }
}

impl Scoped {
    /// What the reader left out so far (peers that did not answer).
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.reader.warnings()
    }
}

/// Where [`Scoped`] leaves the request's reader, so [`warn_partial`] can
/// ask it afterwards what it left out.
#[derive(Clone, Default)]
struct WarningSlot(Arc<Mutex<Option<Arc<dyn SpanReader>>>>);

/// The response header naming what a partial answer left out, one
/// warning per comma-separated entry (`; ` inside an entry). Every API
/// that reads traces carries it (Tempo's responses have no field for it);
/// Jaeger's JSON also puts the warnings into each trace's `warnings`.
pub const WARNINGS_HEADER: &str = "sightline-warnings";

/// Middleware: adds [`WARNINGS_HEADER`] when the request's reader left
/// something out.
pub(crate) async fn warn_partial(mut request: Request, next: Next) -> Response {
    let slot = WarningSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let reader = slot.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    let warnings = reader.map(|r| r.warnings()).unwrap_or_default();
    if let Some(value) = warnings_header(&warnings) {
        response.headers_mut().insert(WARNINGS_HEADER, value);
    }
    response
}

/// [`WARNINGS_HEADER`]'s value for `warnings`; `None` when there are none.
pub(crate) fn warnings_header(warnings: &[String]) -> Option<HeaderValue> {
    if warnings.is_empty() {
        return None;
    }
    {
        let text: Vec<String> = warnings
            .iter()
            .map(|w| {
                w.chars()
                    .map(|c| {
                        if c == ',' {
                            ';'
                        } else if c.is_ascii_graphic() {
                            c
                        } else {
                            ' '
                        }
                    })
                    .collect()
            })
            .collect();
        HeaderValue::from_str(&text.join(", ")).ok()
    }
}
