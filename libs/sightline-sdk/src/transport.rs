//! The HTTP client of the OTLP/HTTP exporter: hyper over rustls (ring
//! provider), run on a thread of its own.
//!
//! Why a thread: the SDK's batch span processor and periodic metric reader
//! call the exporter from their own threads, outside any Tokio runtime, and
//! hyper needs one. So this client owns a one-thread runtime; each request
//! is handed to it over a channel and its answer comes back on a oneshot,
//! which any executor can await. The runtime ends when the client is
//! dropped (the channel closes).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError};
use tokio::sync::{mpsc, oneshot};

/// Bodies longer than this in a response are an error (OTLP answers are tiny).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

type Job = (Request<Bytes>, oneshot::Sender<Result<Response<Bytes>, HttpError>>);

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct OtlpHttpClient {
    jobs: mpsc::UnboundedSender<Job>,
}

impl OtlpHttpClient {
    /// Starts the client's thread; `tls` is used for `https://` URLs.
    pub(crate) fn start(mut tls: rustls::ClientConfig, timeout: Duration) -> std::io::Result<OtlpHttpClient> {
        // hyper-rustls sets ALPN itself (and panics if it is already set).
        tls.alpn_protocols.clear();
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("sightline-otlp-http".into()).spawn(move || {
            runtime.block_on(async move {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
                while let Some((request, reply)) = rx.recv().await {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let answer = match tokio::time::timeout(timeout, send(&client, request)).await {
                            Ok(r) => r,
                            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis()).into()),
                        };
                        let _ = reply.send(answer);
                    });
                }
            });
        })?;
        Ok(OtlpHttpClient { jobs })
    }
}

async fn send<C>(
    client: &Client<C, Full<Bytes>>,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let response = client.request(Request::from_parts(parts, Full::new(body))).await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((request, tx)).map_err(|_| "the OTLP HTTP client has stopped")?;
        rx.await.map_err(|_| "the OTLP HTTP client dropped the request")?
    }
}
