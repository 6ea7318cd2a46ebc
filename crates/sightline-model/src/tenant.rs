//! Who data belongs to.

use std::fmt;
use std::sync::Arc;

/// A tenant: the owner of a batch and the scope of a query.
///
/// Receivers resolve it per request (from the authentication token, or the
/// `X-Scope-OrgID` header as Tempo and Cortex do when no tokens are
/// configured) and attach it to the [`crate::Batch`]; the query API finds it
/// in the request's extensions. Without either, data belongs to
/// [`Tenant::DEFAULT`].
///
/// The name follows Cortex/Tempo's tenant-id rules — 1 to 150 bytes of
/// ASCII letters, digits and `!-_.*'()`, and neither `.` nor `..` — so it
/// is safe as a path component and as a label value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

/// Why a text is not a tenant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tenant {name:?}: use 1-150 characters of letters, digits and !-_.*'() (not \".\" or \"..\")"
)]
pub struct TenantError {
    /// The offending text, truncated to 160 characters.
    pub name: String,
}

impl Tenant {
    /// The tenant of data that names none: Tempo's name for it.
    pub const DEFAULT: &'static str = "single-tenant";

    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 150;

    /// Validates `name` as a tenant name.
    pub fn new(name: &str) -> Result<Tenant, TenantError> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b));
        if valid {
            Ok(Tenant(Arc::from(name)))
        } else {
            Err(TenantError { name: name.chars().take(160).collect() })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is [`Tenant::DEFAULT`].
    pub fn is_default(&self) -> bool {
        &*self.0 == Self::DEFAULT
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant(Arc::from(Self::DEFAULT))
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tenant({:?})", &*self.0)
    }
}

impl std::str::FromStr for Tenant {
    type Err = TenantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tenant::new(s)
    }
}
