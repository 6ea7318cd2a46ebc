//! The router through `oneshot`, merged behind a stand-in API router the way
//! the binary merges it behind `sightline_api::router`.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::assets::{ASSETS, BUILD_HASH, INDEX_ETAG, INDEX_HTML};
use crate::router;

fn app() -> Router {
    Router::new().route("/api/services", get(|| async { "services" })).merge(router())
}

async fn send(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn ui_paths_serve_index_html() {
    for path in [
        "/",
        "/search",
        "/search?service=a&limit=20",
        "/trace/0af7651916cd43dd8448eb211c80319c",
        "/trace/0af7651916cd43dd8448eb211c80319c...5b8efff798038103d269b633813fc60c",
        "/compare",
        "/dependencies",
        "/monitor?service=a.b&kind=server",
    ] {
        let (status, headers, body) = send("GET", path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(body, INDEX_HTML.as_bytes(), "{path}");
    }
}

#[tokio::test]
async fn index_names_the_versioned_assets_and_every_one_is_served() {
    let prefix = format!("/static/{BUILD_HASH}/");
    assert!(!INDEX_HTML.contains("{{"), "placeholder left in index.html");
    assert!(INDEX_HTML.contains(&format!("<link rel=\"modulepreload\" href=\"{prefix}js/trace.js\">")));
    assert!(INDEX_HTML.contains(&format!("{prefix}js/main.js")), "index.html loads main.js");
    assert!(INDEX_HTML.contains(&format!("{prefix}css/app.css")), "index.html loads app.css");
    assert!(ASSETS.iter().any(|a| a.path == "js/main.js"));
    assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path), "sorted for binary search");
    for asset in ASSETS {
        let (status, headers, body) = send("GET", &format!("{prefix}{}", asset.path), &[]).await;
        assert_eq!(status, StatusCode::OK, "{}", asset.path);
        assert_eq!(headers[header::CONTENT_TYPE], asset.content_type, "{}", asset.path);
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(headers[header::ETAG], asset.etag);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(body, asset.body, "{}", asset.path);
    }
}

#[tokio::test]
async fn content_types_follow_the_extension() {
    let prefix = format!("/static/{BUILD_HASH}");
    for (path, want) in [
        ("js/main.js", "text/javascript; charset=utf-8"),
        ("css/app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, _) = send("GET", &format!("{prefix}/{path}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], want, "{path}");
    }
}

#[tokio::test]
async fn every_file_under_web_is_embedded() {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut on_disk = Vec::new();
    walk(&root, &root, &mut on_disk);
    on_disk.retain(|p| p != "index.html");
    on_disk.sort();
    let embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
    assert_eq!(embedded, on_disk);
}

#[tokio::test]
async fn etags_revalidate() {
    let (status, headers, body) = send("GET", "/trace/abc", &[("if-none-match", INDEX_ETAG)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[header::ETAG], INDEX_ETAG);
    assert!(body.is_empty());

    let asset = ASSETS.iter().find(|a| a.path == "js/main.js").unwrap();
    let uri = format!("/static/{BUILD_HASH}/js/main.js");
    let weak = format!("\"nope\", W/{}", asset.etag);
    let (status, _, body) = send("GET", &uri, &[("if-none-match", &weak)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    let (status, _, body) = send("GET", &uri, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, asset.body);
}

#[tokio::test]
async fn api_routes_win_and_unknown_api_paths_are_plain_404s() {
    let (status, _, body) = send("GET", "/api/services", &[]).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"services".as_slice()));
    for path in ["/api", "/api/", "/api/nope", "/api/traces/x/y"] {
        for method in ["GET", "POST"] {
            let (status, headers, body) = send(method, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
            assert_eq!(body, b"404 page not found\n");
        }
    }
}

#[tokio::test]
async fn unknown_files_and_stale_hashes_are_404() {
    for path in [
        "/favicon.ico",
        "/robots.txt",
        "/static/0000000000000000/js/main.js",
        "/static/js/main.js",
        &format!("/static/{BUILD_HASH}/js/nope.js"),
        &format!("/static/{BUILD_HASH}/../Cargo.toml"),
        &format!("/static/{BUILD_HASH}/index.html"),
    ] {
        let (status, _, body) = send("GET", path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, b"404 page not found\n", "{path}");
    }
}

#[tokio::test]
async fn head_has_no_body_and_other_methods_are_refused() {
    let (status, headers, body) = send("HEAD", "/search", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(body.is_empty());

    let (status, headers, _) = send("POST", "/search", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD");
}
