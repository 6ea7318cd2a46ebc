//! Sightline's front door, in front of every listener: how connections are
//! served (timeouts, accept backoff, graceful stop), TLS with certificate
//! reload and mutual TLS, authentication with roles and tenants, browser
//! safety (the Host check against DNS rebinding, security headers), and the
//! file-descriptor limit.
//!
//! The binary builds each listener's router (receivers, query API, UI),
//! wraps it in this crate's layers and serves it with [`serve::serve`].
//! Nothing here knows about spans: the receivers and the API see only the
//! requests that got through, with their tenant in the request extensions.
#![deny(missing_docs)]

pub mod auth;
pub mod browser;
pub mod fdlimit;
pub mod serve;
pub mod tls;

#[cfg(test)]
mod tests;
