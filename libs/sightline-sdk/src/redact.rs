//! Redaction of secrets in recorded URLs: the values of query parameters
//! whose names say they hold a credential are replaced by `REDACTED`
//! (what the HTTP semantic conventions ask for `url.query` / `url.full`,
//! and what opentelemetry-instrumentation-tower and the Collector's
//! redaction processor do). Names are compared case-insensitively with
//! `-` read as `_`.

use std::borrow::Cow;

/// Parameter names that are secrets whole (`sig` and `code`, an OAuth
/// authorization code, are too short to be found as fragments).
const SECRET_NAMES: &[&str] = &[
    "sig",
    "signature",
    "code",
    "key",
    "jwt",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "session_id",
    "awsaccesskeyid",
    "x_amz_credential",
    "x_amz_signature",
    "x_amz_security_token",
    "x_goog_signature",
    "x_goog_credential",
];

/// Fragments that mark a name as a secret wherever they appear
/// (`access_token`, `client_secret`, `api_key`, `userPassword`...).
const SECRET_FRAGMENTS: &[&str] =
    &["token", "password", "passwd", "pwd", "secret", "apikey", "api_key", "credential"];

/// Whether a query parameter named `name` holds a secret.
pub fn is_secret_parameter(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES.contains(&n.as_str()) || SECRET_FRAGMENTS.iter().any(|f| n.contains(f))
}

/// `query` (without the `?`) with secret values replaced by `REDACTED`;
/// borrowed unchanged when there is nothing to hide.
pub fn query(query: &str) -> Cow<'_, str> {
    let secret =
        |pair: &str| pair.split_once('=').is_some_and(|(k, v)| !v.is_empty() && is_secret_parameter(k));
    if !query.split('&').any(secret) {
        return Cow::Borrowed(query);
    }
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret(pair) => format!("{k}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect();
    Cow::Owned(parts.join("&"))
}
