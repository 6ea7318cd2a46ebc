//! The SDK's OTLP export against a real Sightline: the seeds' default path
//! (`OTLP_ENDPOINT`, gRPC on 4317's role), and TLS with a private CA and a
//! client certificate (mutual TLS) over gRPC and over OTLP/HTTP with gzip.
//!
//! Sightline speaks plain OTLP, so TLS is terminated by a small proxy here
//! (tokio-rustls, certificates made by the `openssl` command); it accepts
//! only clients with a certificate from the test CA, so a span that arrives
//! proves the handshake, the CA file and the client pair were all used.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_sdk::opentelemetry::trace::{SpanKind, TraceContextExt as _};
use sightline_sdk::opentelemetry::{Context, KeyValue};
use sightline_sdk::{Guard, Options, init_with_env};

use crate::harness::{Proc, free_port, http, sightline_binary, wait_ok};

pub(crate) struct Sightline {
    _dir: tempfile::TempDir,
    pub(crate) grpc: u16,
    pub(crate) otlp_http: u16,
    pub(crate) api: String,
    _proc: Proc,
}

impl Sightline {
    pub(crate) async fn start() -> Sightline {
        let dir = tempfile::tempdir().expect("tempdir");
        let (grpc, otlp_http, api_port, zipkin) = (free_port(), free_port(), free_port(), free_port());
        let mut proc = Proc::spawn(
            "sightline",
            dir.path(),
            Command::new(sightline_binary())
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
                .args(["--otlp-http-addr", &format!("127.0.0.1:{otlp_http}")])
                .args(["--http-addr", &format!("127.0.0.1:{api_port}")])
                .args(["--zipkin-addr", &format!("127.0.0.1:{zipkin}")])
                .env_remove("SIGHTLINE_CONFIG"),
        );
        let api = format!("http://127.0.0.1:{api_port}");
        wait_ok(&format!("{api}/ready"), &mut proc, Duration::from_secs(60)).await;
        Sightline { _dir: dir, grpc, otlp_http, api, _proc: proc }
    }

    /// The trace's spans (Jaeger JSON), waiting up to 30 s for `n` of them.
    pub(crate) async fn wait_trace(&self, trace_id: &str, n: usize) -> Vec<crate::harness::JSpan> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http().get(format!("{}/api/traces/{trace_id}", self.api)).send().await
                && r.status().is_success()
            {
                let body: serde_json::Value = r.json().await.expect("json");
                let spans = crate::harness::spans_of(&body["data"][0]);
                if spans.len() >= n {
                    return spans;
                }
            }
            assert!(Instant::now() < deadline, "trace {trace_id} did not reach Sightline in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Emits a two-span trace through `guard` and flushes; returns the trace id.
async fn emit(guard: Guard, name: &str) -> String {
    let t = guard.telemetry();
    let root = sightline_sdk::spans::start(&t, name.to_owned(), SpanKind::Server, &Context::new(), vec![]);
    let child = sightline_sdk::spans::start(
        &t,
        "child",
        SpanKind::Internal,
        &root,
        vec![KeyValue::new("exported.by", "sightline-sdk")],
    );
    child.span().end();
    root.span().end();
    let trace_id = root.span().span_context().trace_id().to_string();
    // flush and shutdown block: off the async workers
    tokio::task::spawn_blocking(move || {
        guard.flush();
        drop(guard);
    })
    .await
    .expect("flush");
    trace_id
}

fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_the_seed_way_reaches_sightline() {
    let sl = Sightline::start().await;
    // OTLP_ENDPOINT (seed 000/001) means gRPC without saying so.
    let guard = init_with_env(
        Options::new("grpc-exporter").install_globals(false),
        env(vec![
            ("OTLP_ENDPOINT", format!("http://127.0.0.1:{}", sl.grpc)),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".into()),
        ]),
    )
    .expect("init");
    assert!(guard.problems().is_empty(), "{:?}", guard.problems());
    let trace_id = emit(guard, "grpc root").await;
    let spans = sl.wait_trace(&trace_id, 2).await;
    assert!(spans.iter().all(|s| s.service == "grpc-exporter"));
    let child = spans.iter().find(|s| s.name == "child").expect("child span");
    assert_eq!(child.tag("exported.by"), Some(&serde_json::json!("sightline-sdk")));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out =
        Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
            panic!("running openssl (Debian package openssl; demo/ci.sh installs it): {e}")
        });
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for localhost / 127.0.0.1 and a client
/// certificate, all signed by the CA.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sightline test CA"]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for who in ["server", "client"] {
        let (key, csr, pem, ext, subj) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
            format!("/CN={who}"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .expect("pem")
        .collect::<Result<_, _>>()
        .expect("certs")
}

/// Terminates mutual TLS on a free port and forwards the bytes to
/// `upstream` (a Sightline OTLP port); returns the port.
async fn tls_proxy(dir: &Path, upstream: u16) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&dir.join("ca.pem")) {
        roots.add(c).expect("ca");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("client verifier");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server key");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(&dir.join("server.pem")), key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client without a valid certificate fails here.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_export_over_grpc_and_http_reaches_sightline() {
    let sl = Sightline::start().await;
    let certs = tempfile::tempdir().expect("tempdir");
    make_certificates(certs.path());
    let grpc_tls = tls_proxy(certs.path(), sl.grpc).await;
    let http_tls = tls_proxy(certs.path(), sl.otlp_http).await;
    let file = |n: &str| certs.path().join(n).display().to_string();
    for (protocol, port, host) in [("grpc", grpc_tls, "localhost"), ("http/protobuf", http_tls, "127.0.0.1")]
    {
        let service = format!("tls-{}", protocol.replace('/', "-"));
        let guard = init_with_env(
            Options::new(service.clone()).install_globals(false),
            env(vec![
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    match protocol {
                        "grpc" => format!("https://{host}:{port}"),
                        _ => format!("https://{host}:{port}/v1/traces"),
                    },
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-scope=test".into()),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", file("ca.pem")),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", file("client.pem")),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", file("client.key")),
                ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ]),
        )
        .expect("init");
        assert!(guard.problems().is_empty(), "{protocol}: {:?}", guard.problems());
        let trace_id = emit(guard, &format!("{protocol} over TLS")).await;
        let spans = sl.wait_trace(&trace_id, 2).await;
        assert!(spans.iter().all(|s| s.service == service), "{spans:?}");
    }
}
