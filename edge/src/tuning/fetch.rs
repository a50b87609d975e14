//! Fetching a model of the centre's pool: `GET {centre_api}/api/v1/edges/{site}/{edge}/models/{sha256}`,
//! signed with the edge's credential (the centre serves its pool only to its own edges and engineers), streamed
//! to `{cache}/{sha256}.onnx.part` while its sha256 is computed and its size bounded by the assignment, renamed
//! into place only when the digest matches. A file already in the cache is checked again before use (when the
//! camera loads it); nothing is loaded whose digest differs from the one the centre signed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crowdgrid_proto::tuning::ModelAssignment;
use sha2::{Digest, Sha256};

use crate::identity::Identity;

/// Largest model accepted, whatever an assignment says (bounds the disk a bad assignment can fill).
pub const MAX_MODEL_BYTES: u64 = 512 << 20;

/// The path of the model's file in `cache`.
pub fn cached(cache: &Path, sha256: &str) -> PathBuf {
    cache.join(format!("{sha256}.onnx"))
}

/// The path the centre serves a model at for this edge.
pub fn url_path(id: &Identity, sha256: &str) -> String {
    format!("/api/v1/edges/{}/{}/models/{sha256}", id.site, id.edge)
}

/// Downloads `m` into `cache` unless it is there; the file's path, or why not.
pub async fn fetch(
    http: &reqwest::Client,
    api: &str,
    id: &Identity,
    cache: &Path,
    m: &ModelAssignment,
) -> Result<PathBuf, String> {
    let dest = cached(cache, &m.sha256);
    if dest.is_file() {
        return Ok(dest);
    }
    if m.bytes > MAX_MODEL_BYTES {
        return Err(format!("model of {} bytes is over the {} MiB limit", m.bytes, MAX_MODEL_BYTES >> 20));
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let path = url_path(id, &m.sha256);
    let mut req = http.get(format!("{}{path}", api.trim_end_matches('/'))).timeout(Duration::from_secs(600));
    for (k, v) in id.sign_get(&path) {
        req = req.header(k, v);
    }
    let mut resp = req.send().await.map_err(|e| format!("fetching {}: {e}", m.name))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {}: the centre answered {}", m.name, resp.status()));
    }
    let part = cache.join(format!("{}.onnx.part", m.sha256));
    let mut file = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let mut hash = Sha256::new();
    let mut got = 0u64;
    let result = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                got += chunk.len() as u64;
                if got > m.bytes {
                    break Err(format!("fetching {}: more than the {} bytes assigned", m.name, m.bytes));
                }
                hash.update(&chunk);
                if let Err(e) = file.write_all(&chunk) {
                    break Err(format!("{}: {e}", part.display()));
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(format!("fetching {}: {e}", m.name)),
        }
    };
    let result = result.and_then(|()| {
        let actual = hex::encode(hash.finalize());
        if actual != m.sha256 {
            return Err(format!("{}: sha256 {actual} does not match the assigned {}", m.name, m.sha256));
        }
        file.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&part, &dest).map_err(|e| format!("{}: {e}", dest.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result.map(|()| dest)
}
