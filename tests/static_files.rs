//! The web app's files over HTTP as a browser gets them (issue 13: every visit downloaded everything, 264 KB for the
//! map): compressed when the browser accepts it, with an ETag so a second visit transfers only what changed, and the
//! map page — HTML, styles, scripts and the modules they import — within 150 KB on a first visit.

mod common;

use std::collections::BTreeSet;

use common::central_embedded;

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The files a page pulls in: its `src`/`href` attributes, then the modules each script imports.
fn references(base: &str, text: &str) -> Vec<String> {
    let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
    let mut out = Vec::new();
    // A page's attributes; a module's imports (its template strings hold `href="${…}"` that are not files).
    let patterns: &[&str] = if base.ends_with(".js") { &["from './"] } else { &["src=\"", "href=\""] };
    for pat in patterns {
        for part in text.split(pat).skip(1) {
            let end = part.find(['"', '\'']).unwrap_or(0);
            let rel = part[..end].trim_start_matches("./");
            if !rel.is_empty() && !rel.starts_with("http") && !rel.starts_with('#') && !rel.starts_with('/') {
                out.push(if dir.is_empty() { rel.to_string() } else { format!("{dir}/{rel}") });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_is_compressed_cached_and_light() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(central_embedded(dir.path())).await.unwrap();
    let base = format!("http://{}/ui/", central.api_addr);

    // Compressed when accepted, not when not; an ETag either way.
    let gz = get(&format!("{base}js/map.js"), &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let etag = gz.headers()["etag"].to_str().unwrap().to_string();
    let zipped = gz.bytes().await.unwrap().len();
    let plain = get(&format!("{base}js/map.js"), &[]).await;
    assert!(plain.headers().get("content-encoding").is_none());
    let raw = plain.bytes().await.unwrap().len();
    assert!(zipped * 3 < raw, "gzip {zipped} B of {raw} B");
    let br = get(&format!("{base}js/map.js"), &[("Accept-Encoding", "br")]).await;
    assert_eq!(br.headers()["content-encoding"], "br");

    // A second visit: 304 without a body for what did not change.
    let again = get(&format!("{base}js/map.js"), &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status().as_u16(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = get(&format!("{base}js/map.js"), &[("If-None-Match", "\"something-else\"")]).await;
    assert_eq!(other.status().as_u16(), 200);

    // The map page on a first visit, compressed as a browser asks for it.
    let mut todo = vec!["index.html".to_string()];
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let resp = get(&format!("{base}{path}"), &[("Accept-Encoding", "gzip, deflate, br")]).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let body = resp.bytes().await.unwrap();
        total += body.len();
        if path.ends_with(".html") || path.ends_with(".js") {
            let plain = get(&format!("{base}{path}"), &[]).await.text().await.unwrap();
            todo.extend(references(&path, &plain).into_iter().filter(|p| !p.ends_with(".png")));
        }
    }
    assert!(
        seen.contains("js/map.js") && seen.contains("js/api.js") && seen.contains("vendor/leaflet/leaflet.js"),
        "{seen:?}"
    );
    println!("map page: {} files, {total} bytes transferred compressed", seen.len());
    assert!(total <= 150 * 1024, "{total} bytes for {seen:?}");
    central.stop().await;
}
