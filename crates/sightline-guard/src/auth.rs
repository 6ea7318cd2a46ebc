//! Authentication, roles and tenants.
//!
//! With a token file (`--auth-tokens FILE`), every request except the
//! listener's open paths (`/health`, `/ready`, and `/metrics` unless
//! protected) must present a token: `Authorization: Bearer TOKEN` (HTTP
//! and gRPC metadata alike), or HTTP Basic with the token as the password
//! — what Grafana data sources and browsers send. No or an unknown token
//! is 401 / `UNAUTHENTICATED`; a token without the listener's role is 403 /
//! `PERMISSION_DENIED`. The tenant comes from the token.
//!
//! Without a token file, `X-Scope-OrgID` names the tenant, as in Tempo and
//! Cortex; without the header the request belongs to the default tenant.
//!
//! Either way the resolved [`Tenant`] goes into the request's extensions,
//! where receivers attach it to batches and the query API will scope
//! queries by it.
//!
//! # The token file
//!
//! One token per line: `TOKEN TENANT ROLES`, roles a comma list of `read`
//! and `write`; `#` starts a comment. Tokens must be at least 16
//! characters. The file is reloaded when it changes (the binary checks
//! every few seconds and on SIGHUP); a file that does not parse keeps the
//! previous tokens in force.
//!
//! # Secrets
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time
//! (the digest of the presented token against every entry, without an
//! early exit), so neither timing nor a memory dump gives one away; they
//! never appear in logs or errors (a bad line is named by its number).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use sightline_model::Tenant;
use subtle::ConstantTimeEq as _;

/// The header naming the tenant when no token file is in use.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Shortest token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Query traces (the API and UI).
    Read,
    /// Send spans (the receivers).
    Write,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

/// A token's tenant and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Whose data the token reads and writes.
    pub tenant: Tenant,
    /// May query.
    pub read: bool,
    /// May send.
    pub write: bool,
}

impl Grant {
    fn allows(&self, role: Role) -> bool {
        match role {
            Role::Read => self.read,
            Role::Write => self.write,
        }
    }
}

/// A parsed token file.
pub struct Tokens {
    entries: Vec<([u8; 32], Grant)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print digests, let alone tokens.
        f.debug_struct("Tokens").field("count", &self.entries.len()).finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Tokens {
    /// Parses a token file's text; every bad line is reported by number
    /// (never with its token).
    pub fn parse(text: &str) -> Result<Tokens, Vec<String>> {
        let mut entries: Vec<([u8; 32], Grant)> = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.split_once('#').map_or(line, |(before, _)| before).trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [token, tenant, roles] = fields.as_slice() else {
                problems.push(format!("line {n}: expected TOKEN TENANT ROLES, got {} fields", fields.len()));
                continue;
            };
            if token.chars().count() < MIN_TOKEN_LEN {
                problems.push(format!("line {n}: the token is shorter than {MIN_TOKEN_LEN} characters"));
                continue;
            }
            let tenant = match Tenant::new(tenant) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("line {n}: {e}"));
                    continue;
                }
            };
            let mut grant = Grant { tenant, read: false, write: false };
            for role in roles.split(',').map(str::trim) {
                match role {
                    "read" => grant.read = true,
                    "write" => grant.write = true,
                    other => {
                        problems.push(format!("line {n}: unknown role {other:?}; roles are read, write"))
                    }
                }
            }
            let digest = digest(token.as_bytes());
            if entries.iter().any(|(d, _)| *d == digest) {
                problems.push(format!("line {n}: the same token is listed twice"));
                continue;
            }
            entries.push((digest, grant));
        }
        if problems.is_empty() { Ok(Tokens { entries }) } else { Err(problems) }
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant of `presented`, compared in constant time against every
    /// entry.
    pub fn find(&self, presented: &[u8]) -> Option<&Grant> {
        let presented = digest(presented);
        let mut found = None;
        for (d, grant) in &self.entries {
            if bool::from(d.ct_eq(&presented)) {
                found = Some(grant);
            }
        }
        found
    }
}

/// Why a token file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read --auth-tokens {path}: {source}")]
    Read {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Lines that do not parse.
    #[error("invalid --auth-tokens {path}: {}", problems.join("; "))]
    Invalid {
        /// Its path.
        path: PathBuf,
        /// One message per bad line.
        problems: Vec<String>,
    },
}

/// A file's modification time and size, to notice changes.
type Stamp = Option<(SystemTime, u64)>;

/// A token file, reloaded when it changes.
pub struct TokenFile {
    path: PathBuf,
    current: parking_lot::RwLock<(Arc<Tokens>, Stamp)>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile").field("path", &self.path).finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
}

fn read_tokens(path: &Path) -> Result<Tokens, AuthError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_owned(), source })?;
    Tokens::parse(&text).map_err(|problems| AuthError::Invalid { path: path.to_owned(), problems })
}

impl TokenFile {
    /// Loads the file; fails with every bad line.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let stamp = stamp(path);
        let tokens = read_tokens(path)?;
        Ok(TokenFile { path: path.to_owned(), current: parking_lot::RwLock::new((Arc::new(tokens), stamp)) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether other users may read the file (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(&self.path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }

    /// The tokens in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        Arc::clone(&self.current.read().0)
    }

    /// Reloads when the file changed: `Ok(true)` with new tokens in force,
    /// `Ok(false)` unchanged, `Err` (the old tokens stay) when the new file
    /// does not parse.
    pub fn reload_if_changed(&self) -> Result<bool, AuthError> {
        let stamp = stamp(&self.path);
        if self.current.read().1 == stamp {
            return Ok(false);
        }
        let loaded = read_tokens(&self.path);
        let mut current = self.current.write();
        current.1 = stamp;
        current.0 = Arc::new(loaded?);
        Ok(true)
    }
}

/// How a listener authenticates and which role it requires.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The token file, or `None` for `X-Scope-OrgID` tenancy.
    pub tokens: Option<Arc<TokenFile>>,
    /// The role every protected request needs.
    pub role: Role,
    /// Paths served without a token.
    pub open_paths: Vec<&'static str>,
    /// Answer denials as gRPC statuses (trailers-only) rather than HTTP.
    pub grpc: bool,
}

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No token, or one not in the file.
    Unauthenticated(&'static str),
    /// A valid token without the role.
    Forbidden(Role),
    /// An invalid `X-Scope-OrgID`.
    BadTenant(String),
}

impl Policy {
    /// The tenant of a request with these headers, or why it is refused.
    pub fn resolve(&self, headers: &HeaderMap) -> Result<Tenant, Denial> {
        let Some(file) = &self.tokens else {
            return match headers.get(TENANT_HEADER) {
                None => Ok(Tenant::default()),
                Some(v) => v.to_str().ok().and_then(|s| Tenant::new(s.trim()).ok()).ok_or_else(|| {
                    Denial::BadTenant(format!(
                        "invalid {TENANT_HEADER} header: use 1-150 characters of letters, digits and !-_.*'()"
                    ))
                }),
            };
        };
        let token = presented_token(headers)
            .ok_or(Denial::Unauthenticated("no token: send Authorization: Bearer TOKEN"))?;
        let tokens = file.tokens();
        let grant = tokens.find(&token).ok_or(Denial::Unauthenticated("unknown token"))?;
        if grant.allows(self.role) { Ok(grant.tenant.clone()) } else { Err(Denial::Forbidden(self.role)) }
    }
}

/// The token from `Authorization: Bearer T` or `Basic base64(user:T)`.
fn presented_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    let credentials = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Some(credentials.to_vec())
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(decoded.get(colon + 1..)?.to_vec())
    } else {
        None
    }
}

impl Denial {
    fn message(&self) -> String {
        match self {
            Denial::Unauthenticated(why) => format!("401 unauthorized: {why}"),
            Denial::Forbidden(role) => format!("403 forbidden: the token lacks the {} role", role.as_str()),
            Denial::BadTenant(why) => format!("400 bad request: {why}"),
        }
    }

    /// The HTTP response; a 401 names both schemes, so browsers ask for a
    /// user name and password (the token) and API clients see Bearer.
    pub fn http_response(&self) -> Response {
        let status = match self {
            Denial::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denial::Forbidden(_) => StatusCode::FORBIDDEN,
            Denial::BadTenant(_) => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, self.message()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if status == StatusCode::UNAUTHORIZED {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="sightline""#));
            headers.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="sightline", charset="UTF-8""#),
            );
        }
        response
    }

    /// The gRPC trailers-only response.
    pub fn grpc_response(&self) -> Response {
        let code = match self {
            Denial::Unauthenticated(_) => tonic_code::UNAUTHENTICATED,
            Denial::Forbidden(_) => tonic_code::PERMISSION_DENIED,
            Denial::BadTenant(_) => tonic_code::INVALID_ARGUMENT,
        };
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(code));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&self.message())) {
            headers.insert("grpc-message", message);
        }
        response
    }
}

/// gRPC status codes used here (the gRPC spec's numbers).
mod tonic_code {
    pub(super) const INVALID_ARGUMENT: u16 = 3;
    pub(super) const PERMISSION_DENIED: u16 = 7;
    pub(super) const UNAUTHENTICATED: u16 = 16;
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The middleware: lets open paths through, resolves everyone else's
/// tenant into the request's extensions or answers the denial.
pub async fn check(State(policy): State<Arc<Policy>>, mut request: Request, next: Next) -> Response {
    if policy.open_paths.iter().any(|p| *p == request.uri().path()) {
        return next.run(request).await;
    }
    match policy.resolve(request.headers()) {
        Ok(tenant) => {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Err(denial) => {
            tracing::debug!(path = request.uri().path(), denial = ?denial_kind(&denial), "request refused");
            if policy.grpc { denial.grpc_response() } else { denial.http_response() }
        }
    }
}

fn denial_kind(denial: &Denial) -> &'static str {
    match denial {
        Denial::Unauthenticated(_) => "unauthenticated",
        Denial::Forbidden(_) => "forbidden",
        Denial::BadTenant(_) => "bad tenant",
    }
}

/// Wraps `router` in the policy's check.
pub fn protect(router: axum::Router, policy: Policy) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(policy), check))
}
