//! The web app (`web/`), embedded in the binary: `/ui/...`; `/` redirects there.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::Embed;

/// The files of `web/` (read from disk in debug builds, embedded in release builds).
#[derive(Embed)]
#[folder = "web/"]
struct Assets;

fn serve(path: &str) -> Response {
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    match Assets::get(&path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache".to_string())], file.data).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// `GET /ui/{*path}`
pub async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

/// `GET /ui/`
pub async fn index() -> Response {
    serve("")
}

/// `GET /`
pub async fn root() -> Redirect {
    Redirect::temporary("/ui/")
}
