//! Serving over real loopback sockets: idle and half-sent connections are
//! closed, requests in progress are not, shutdown is graceful.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::serve::{Options, serve};

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(app: Router, header: Duration, idle: Duration) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let options = Options { name: "test", header_timeout: header, idle_timeout: idle, tls: None };
    let task = tokio::spawn(serve(listener, app, options, async move {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), task }
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "slow"
        }),
    )
}

/// Reads until the server closes the connection (bounded by a generous
/// timeout so a broken server fails the test instead of hanging it).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start(app(), Duration::from_secs(10), Duration::from_millis(300)).await;
    // Never sends a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_to_close(&mut silent).await, "");
    // A keep-alive connection after its response.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let response = read_to_close(&mut kept).await;
    assert!(response.starts_with("HTTP/1.1 200 OK") && response.ends_with("hello"), "{response}");
}

#[tokio::test]
async fn half_sent_request_heads_are_closed() {
    let server = start(app(), Duration::from_millis(300), Duration::from_secs(60)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Trickling bytes keeps the connection busy but not the header timer.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if slow.write_all(b"X-A: b\r\n").await.is_err() {
            break;
        }
    }
    let response = read_to_close(&mut slow).await;
    assert!(!response.contains("hello"), "{response}");
}

#[tokio::test]
async fn a_request_in_progress_is_not_idle() {
    let server = start(app(), Duration::from_secs(10), Duration::from_millis(300)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let response = read_to_close(&mut client).await;
    assert!(response.ends_with("slow"), "{response}");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_progress() {
    let mut server = start(app(), Duration::from_secs(10), Duration::from_secs(60)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let response = read_to_close(&mut client).await;
    assert!(response.ends_with("slow"), "{response}");
    tokio::time::timeout(Duration::from_secs(20), server.task).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err(), "the listener is closed");
}

// ------------------------------------------------------------------ auth

mod auth {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{HeaderMap, HeaderValue, Request, StatusCode};
    use sightline_model::Tenant;
    use tower::ServiceExt as _;

    use crate::auth::{Denial, Policy, Role, TokenFile, Tokens, protect};

    const FILE: &str = "# ingest and query for acme\n\
        acme-token-0123456789 acme read,write\n\
        \n\
        reader-token-0123456789   globex   read   # a comment\n\
        writer-token-0123456789 globex write\n";

    fn headers(auth: Option<&str>, org: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        if let Some(o) = org {
            h.insert("x-scope-orgid", HeaderValue::from_str(o).unwrap());
        }
        h
    }

    fn file(text: &str) -> (tempfile::TempDir, Arc<TokenFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, text).unwrap();
        (dir, Arc::new(TokenFile::load(&path).unwrap()))
    }

    fn policy(tokens: Option<Arc<TokenFile>>, role: Role) -> Policy {
        Policy { tokens, role, open_paths: vec!["/health"], grpc: false }
    }

    #[test]
    fn token_files_parse_and_name_bad_lines_without_their_tokens() {
        let tokens = Tokens::parse(FILE).unwrap();
        assert_eq!(tokens.len(), 3);
        let acme = tokens.find(b"acme-token-0123456789").unwrap();
        assert_eq!((acme.tenant.as_str(), acme.read, acme.write), ("acme", true, true));
        assert!(tokens.find(b"acme-token-012345678").is_none());
        assert!(tokens.find(b"").is_none());
        assert!(!format!("{tokens:?}").contains("acme-token"));

        let bad = "short acme read\nsecret-token-0123456789 acme\nsecret-token-0123456789 a/b read\n\
                   secret-token-0123456789 acme admin\nok-token-00000000000000 x read\nok-token-00000000000000 y read\n";
        let problems = Tokens::parse(bad).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].starts_with("line 1: the token is shorter than 16"));
        assert!(problems[1].starts_with("line 2: expected TOKEN TENANT ROLES, got 2 fields"));
        assert!(problems[2].starts_with("line 3: invalid tenant \"a/b\""));
        assert!(problems[3].starts_with("line 4: unknown role \"admin\""));
        assert!(problems[4].starts_with("line 6: the same token is listed twice"));
        assert!(problems.iter().all(|p| !p.contains("secret-token") && !p.contains("ok-token")));
    }

    #[test]
    fn bearer_and_basic_resolve_the_tokens_tenant_and_roles_are_checked() {
        let (_dir, tokens) = file(FILE);
        let write = policy(Some(Arc::clone(&tokens)), Role::Write);
        let read = policy(Some(tokens), Role::Read);
        let acme = Tenant::new("acme").unwrap();
        assert_eq!(write.resolve(&headers(Some("Bearer acme-token-0123456789"), None)), Ok(acme.clone()));
        assert_eq!(read.resolve(&headers(Some("bearer   acme-token-0123456789"), None)), Ok(acme.clone()));
        // Basic: any user name, the token as the password (Grafana).
        let basic = format!("Basic {}", base64_encode("grafana:acme-token-0123456789"));
        assert_eq!(read.resolve(&headers(Some(&basic), None)), Ok(acme.clone()));
        // The token decides the tenant; X-Scope-OrgID cannot override it.
        assert_eq!(read.resolve(&headers(Some("Bearer acme-token-0123456789"), Some("globex"))), Ok(acme));
        assert_eq!(
            write.resolve(&headers(Some("Bearer reader-token-0123456789"), None)),
            Err(Denial::Forbidden(Role::Write))
        );
        assert_eq!(
            read.resolve(&headers(Some("Bearer writer-token-0123456789"), None)),
            Err(Denial::Forbidden(Role::Read))
        );
        assert!(matches!(read.resolve(&headers(None, None)), Err(Denial::Unauthenticated(_))));
        assert!(matches!(
            read.resolve(&headers(Some("Bearer nope-0123456789abcdef"), None)),
            Err(Denial::Unauthenticated(_))
        ));
        assert!(matches!(
            read.resolve(&headers(Some("Token acme-token-0123456789"), None)),
            Err(Denial::Unauthenticated(_))
        ));
        assert!(matches!(read.resolve(&headers(Some("Basic !!!"), None)), Err(Denial::Unauthenticated(_))));
    }

    fn base64_encode(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn without_tokens_x_scope_orgid_names_the_tenant() {
        let open = policy(None, Role::Write);
        assert_eq!(open.resolve(&headers(None, None)), Ok(Tenant::default()));
        assert_eq!(open.resolve(&headers(None, Some("team-a"))), Ok(Tenant::new("team-a").unwrap()));
        assert!(matches!(open.resolve(&headers(None, Some("../etc"))), Err(Denial::BadTenant(_))));
    }

    #[test]
    fn the_token_file_reloads_and_a_broken_file_keeps_the_old_tokens() {
        let (dir, tokens) = file(FILE);
        let path = dir.path().join("tokens");
        assert!(!tokens.reload_if_changed().unwrap(), "unchanged");
        std::fs::write(&path, "new-token-0123456789abc acme read\n").unwrap();
        assert!(tokens.reload_if_changed().unwrap());
        assert!(tokens.tokens().find(b"new-token-0123456789abc").is_some());
        assert!(tokens.tokens().find(b"acme-token-0123456789").is_none(), "removed tokens stop working");
        std::fs::write(&path, "garbage line\n").unwrap();
        let e = tokens.reload_if_changed().unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(tokens.tokens().find(b"new-token-0123456789abc").is_some(), "the old tokens stay");
    }

    #[tokio::test]
    async fn the_layer_answers_401_403_and_passes_the_tenant_on() {
        let (_dir, tokens) = file(FILE);
        let app = Router::new()
            .route("/who", get(|tenant: axum::Extension<Tenant>| async move { tenant.0.to_string() }))
            .route("/health", get(|| async { "ok" }));
        let app = protect(app, policy(Some(tokens), Role::Read));
        let call = |auth: Option<&'static str>, path: &'static str| {
            let app = app.clone();
            async move {
                let mut request = Request::get(path);
                if let Some(a) = auth {
                    request = request.header("authorization", a);
                }
                let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
                let status = response.status();
                let challenges: Vec<String> = response
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                (status, challenges, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, challenges, _) = call(None, "/who").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenges.len(), 2, "Bearer and Basic");
        assert_eq!(call(Some("Bearer writer-token-0123456789"), "/who").await.0, StatusCode::FORBIDDEN);
        let (status, _, body) = call(Some("Bearer reader-token-0123456789"), "/who").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "globex"));
        assert_eq!(call(None, "/health").await.0, StatusCode::OK, "open path");
        let (status, _, body) = call(None, "/nowhere").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "unknown paths too: {body}");
    }
}

// --------------------------------------------------------------- browser

mod browser {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use crate::browser::{AllowedHosts, HostCheck, check_hosts, security_headers};

    #[test]
    fn hosts_are_ips_localhost_or_configured_names() {
        let none = AllowedHosts::default();
        for ok in
            ["127.0.0.1:4318", "10.0.0.7", "[::1]:16686", "localhost:4318", "LOCALHOST", "ui.localhost:80"]
        {
            assert!(none.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:4318", "localhost.evil.example", "127.0.0.1.nip.io:80", ""]
        {
            assert!(!none.allows(bad), "{bad}");
        }
        let named = AllowedHosts::parse("sightline.internal, Traces.Example.com").unwrap();
        assert!(named.allows("sightline.internal:4317") && named.allows("traces.example.com"));
        assert!(!named.allows("evil.example"));
        assert!(AllowedHosts::parse("*").unwrap().allows("evil.example"));
        assert!(AllowedHosts::parse("a b").is_err());
        let domain = AllowedHosts::parse(".peers.obs.svc").unwrap();
        for ok in ["sightline-0.peers.obs.svc:16686", "peers.obs.svc", "a.b.peers.obs.svc."] {
            assert!(domain.allows(ok), "{ok}");
        }
        for bad in ["evilpeers.obs.svc", "peers.obs.svc.evil.example", "obs.svc"] {
            assert!(!domain.allows(bad), "{bad}");
        }
        assert!(AllowedHosts::parse(".").is_err());
    }

    #[tokio::test]
    async fn other_hosts_get_421_and_responses_carry_security_headers() {
        let app = Router::new().route("/", get(|| async { "hi" })).route(
            "/own-csp",
            get(|| async { ([("content-security-policy", "default-src 'self'")], "page") }),
        );
        let app =
            security_headers(check_hosts(app, HostCheck { allowed: AllowedHosts::default(), grpc: false }));
        let call = |host: &'static str, path: &'static str| {
            let app = app.clone();
            async move {
                app.oneshot(Request::get(path).header("host", host).body(Body::empty()).unwrap())
                    .await
                    .unwrap()
            }
        };
        let rebound = call("evil.example:16686", "/").await;
        assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(rebound.headers()["x-frame-options"], "DENY", "refusals carry the headers too");
        let ok = call("127.0.0.1:16686", "/").await;
        assert_eq!(ok.status(), StatusCode::OK);
        let h = ok.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        let own = call("localhost", "/own-csp").await;
        assert_eq!(
            own.headers()["content-security-policy"],
            "default-src 'self'",
            "a handler's own CSP stays"
        );
    }
}
