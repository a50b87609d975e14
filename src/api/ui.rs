//! The web app (`web/`), embedded in the binary: `/ui/...`; `/` redirects there. Each file carries a strong ETag
//! (its SHA-256) and `Cache-Control: no-cache`, so a browser revalidates and a second visit transfers only what
//! changed (304 otherwise); the router compresses the answers (gzip or brotli, as the browser accepts).

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::Embed;

/// The files of `web/` (read from disk in debug builds, embedded in release builds).
#[derive(Embed)]
#[folder = "web/"]
struct Assets;

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let Some(file) = Assets::get(&path) else { return (StatusCode::NOT_FOUND, "not found").into_response() };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let head = [(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache".to_string())];
    if cached {
        return (StatusCode::NOT_MODIFIED, head).into_response();
    }
    let mime = file.metadata.mimetype().to_string();
    (head, [(header::CONTENT_TYPE, mime)], file.data).into_response()
}

/// `GET /ui/{*path}`
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// `GET /ui/`
pub async fn index(headers: HeaderMap) -> Response {
    serve("", &headers)
}

/// `GET /`
pub async fn root() -> Redirect {
    Redirect::temporary("/ui/")
}
