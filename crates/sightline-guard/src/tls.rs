//! TLS for every listener: rustls with the ring provider, certificates
//! reloaded without a restart, optional client certificates (mutual TLS).
//!
//! The certificate, key and client CA are PEM files. [`TlsAcceptor`] holds
//! the current `ServerConfig`; [`TlsAcceptor::reload_if_changed`] rebuilds
//! it when a file's modification time or size changed (the binary calls it
//! every few seconds and on SIGHUP). A reload that fails — a half-written
//! file, a key that does not match — keeps serving the previous
//! certificate and reports why. Each handshake uses the config current
//! when it starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

/// The PEM files of a listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to; `None` asks for
    /// no client certificate.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which file (`--tls-cert`, …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The files do not make a usable configuration (e.g. key and
    /// certificate do not match).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Accepts TLS connections with the current configuration. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: Arc<Inner>,
}

struct Inner {
    files: TlsFiles,
    current: parking_lot::RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    stamp: Vec<Option<(SystemTime, u64)>>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor").field("files", &self.inner.files).finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the files; fails with the file and reason.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = build(&files)?;
        Ok(TlsAcceptor { inner: Arc::new(Inner { files, current: parking_lot::RwLock::new(loaded) }) })
    }

    /// The files it serves.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// Reloads when a file changed: `Ok(true)` when a new configuration is
    /// in force, `Ok(false)` when nothing changed, `Err` (the old one stays)
    /// when the new files do not load.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = stamps(&self.inner.files);
        if self.inner.current.read().stamp == stamp {
            return Ok(false);
        }
        match build(&self.inner.files) {
            Ok(loaded) => {
                *self.inner.current.write() = loaded;
                Ok(true)
            }
            Err(e) => {
                // Do not retry the same broken files every tick.
                self.inner.current.write().stamp = stamp;
                Err(e)
            }
        }
    }

    /// Performs the server side of a handshake.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let config = Arc::clone(&self.inner.current.read().config);
        tokio_rustls::TlsAcceptor::from(config).accept(io).await
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

fn file_error(what: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { what, path: path.to_owned(), reason: reason.to_string() }
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let stamp = stamps(files);
    let certs = certificates("--tls-cert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error("--tls-key", &files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("--tls-client-ca", path)? {
                roots.add(cert).map_err(|e| file_error("--tls-client-ca", path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_error("--tls-client-ca", path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("--tls-cert and --tls-key: {e}")))?;
    // gRPC clients insist on ALPN h2; browsers and HTTP/1 clients pick
    // http/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded { config: Arc::new(config), stamp })
}
