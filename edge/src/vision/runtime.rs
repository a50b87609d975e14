//! Finding and loading ONNX Runtime (`ort` with `load-dynamic`): nobody has to export anything by hand.
//!
//! Search order, first hit wins:
//! 1. the camera's `model.runtime_path` in the edge config;
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. `.cache/onnxruntime/<version>/libonnxruntime.so*` in the working directory, next to the executable or
//!    in any of their parent directories (where `scripts/setup.sh` puts it), and in this source tree;
//! 4. `onnxruntime/capi/libonnxruntime.so*` in a Python environment (`.cache/venv`, `/usr/lib/python3*`,
//!    `/usr/local/lib/python3*`).
//!
//! The library is loaded once per process; later calls reuse the environment.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

/// Why ONNX Runtime could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No library file was found; lists every place searched.
    #[error("libonnxruntime not found; run scripts/setup.sh, or set model.runtime_path or ORT_DYLIB_PATH. Looked in: {}", .looked.join(", "))]
    NotFound {
        /// Places searched, in order.
        looked: Vec<String>,
    },
    /// A library was found but could not be loaded or is the wrong version.
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// The loader's message.
        message: String,
    },
}

/// Where to look, in order (existing or not), for [`find`].
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut c = Vec::new();
    if let Some(p) = configured {
        c.push(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        roots.extend(exe_dir.ancestors().map(Path::to_path_buf));
    }
    // This source tree (useful for tests and `cargo run` from anywhere).
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    for r in roots {
        let d = r.join(".cache/onnxruntime");
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    let mut py: Vec<PathBuf> = dirs.iter().filter_map(|d| d.parent().map(|p| p.join("venv/lib"))).collect();
    py.extend(["/usr/lib", "/usr/local/lib"].map(PathBuf::from));
    for d in &dirs {
        c.extend(versioned_libs(d, true));
        c.push(d.join("<version>/libonnxruntime.so.*"));
    }
    for d in py {
        for sp in python_dirs(&d) {
            c.extend(versioned_libs(&sp.join("onnxruntime/capi"), false));
        }
    }
    c
}

/// `libonnxruntime.so*` files in `dir` (or its version subdirectories), newest name last.
fn versioned_libs(dir: &Path, nested: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if nested && p.is_dir() {
            out.extend(versioned_libs(&p, false));
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")) {
            out.push(p);
        }
    }
    out.sort();
    out.reverse();
    out
}

/// `python3*/{site,dist}-packages` under `lib` (and `lib/python3` for Debian).
fn python_dirs(lib: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(lib) {
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3")) {
                out.push(p.join("site-packages"));
                out.push(p.join("dist-packages"));
            }
        }
    }
    out
}

/// The first existing candidate, or [`RuntimeError::NotFound`] listing where it looked.
pub fn find(configured: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let c = candidates(configured);
    c.iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| RuntimeError::NotFound { looked: c.iter().map(|p| p.display().to_string()).collect() })
}

static ENV: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime (once per process) and returns its environment.
pub fn environment(configured: Option<&Path>) -> Result<Environment, RuntimeError> {
    if let Some(env) = ENV.get() {
        return Ok(env.clone());
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env.clone());
    }
    let path = find(configured)?;
    let load = |message: String| RuntimeError::Load { path: path.display().to_string(), message };
    let env = ort::init_from(&path)
        .map_err(|e| load(e.to_string()))?
        .with_name("crowdgrid")
        .build()
        .map_err(|e| load(e.to_string()))?;
    tracing::info!(path = %path.display(), "ONNX Runtime loaded");
    Ok(ENV.get_or_init(|| env).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_configured_library_lists_where_it_looked() {
        let bogus = Path::new("/nonexistent/libonnxruntime.so");
        let c = candidates(Some(bogus));
        assert_eq!(c[0], bogus, "the configured path is tried first");
        assert!(c.iter().any(|p| p.to_string_lossy().contains(".cache/onnxruntime")), "{c:?}");
    }

    #[test]
    fn not_found_message_names_the_places() {
        let e = RuntimeError::NotFound { looked: vec!["/a/libonnxruntime.so".into(), "/b".into()] };
        let s = e.to_string();
        assert!(s.contains("scripts/setup.sh") && s.contains("/a/libonnxruntime.so, /b"), "{s}");
    }
}
