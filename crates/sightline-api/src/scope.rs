//! [`Scoped`]: the state a query handler sees, narrowed to the request's
//! tenant. Handlers that read data take it instead of the whole state, so
//! every read goes to the reader of the tenant the auth layer put in the
//! request's extensions (the default tenant when there is none), and no
//! answer can mix tenants.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
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
        let reader = state.readers.reader(&tenant).await?;
        Ok(Scoped { tenant, reader, state: state.clone() })
    }
}
