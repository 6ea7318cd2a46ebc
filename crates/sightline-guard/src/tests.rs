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
