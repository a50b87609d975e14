//! The city's shared model pool at the centre: a manifest in the edges' format (`models/manifest.toml`: file,
//! sha256, version, layout, input, classes, licence, source) whose files the centre serves to its edges, and the
//! `eval-model` reports beside it (`evals/*.json`) that the engineer's console shows before a threshold or model
//! is pushed. Every file's sha256 is checked when the centre starts; a model that does not match is left out of
//! the pool (logged), so nothing is ever assigned whose bytes differ from its manifest entry.

use std::path::{Path, PathBuf};

use crowdgrid_edge::vision::eval::report::EvalReport;
use crowdgrid_edge::vision::manifest::{read_verified, Manifest, ModelSpec};
use serde::{Deserialize, Serialize};

/// `[models]` of central.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPoolConfig {
    /// The pool's manifest (relative to central.toml); absent: no pool (model assignments are refused).
    #[serde(default)]
    pub manifest: Option<PathBuf>,
}

/// One model of the pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolModel {
    /// The manifest entry (`file` as the manifest writes it).
    pub spec: ModelSpec,
    /// The file's size.
    pub bytes: u64,
    /// Where it is on disk (not served).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The loaded pool.
#[derive(Debug, Clone, Default)]
pub struct ModelPool {
    models: Vec<PoolModel>,
    evals: Option<PathBuf>,
}

/// Largest eval report read (a sweep of a few hundred images is well under it).
const MAX_REPORT_BYTES: u64 = 16 << 20;

impl ModelPool {
    /// Loads and checks the pool named by `cfg` (empty without one). A manifest that cannot be read is an
    /// error; a model whose file is missing or does not match is logged and left out.
    pub fn load(cfg: &ModelPoolConfig) -> Result<ModelPool, String> {
        let Some(manifest) = &cfg.manifest else { return Ok(ModelPool::default()) };
        let text = std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let m: Manifest = toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let mut models = Vec::new();
        for spec in m.models {
            let mut resolved = spec.clone();
            resolved.file = dir.join(&spec.file);
            match read_verified(&resolved) {
                Ok(bytes) => {
                    models.push(PoolModel { bytes: bytes.len() as u64, path: resolved.file.clone(), spec });
                }
                Err(e) => tracing::error!(model = %spec.name, error = %e, "model left out of the pool"),
            }
        }
        tracing::info!(models = models.len(), manifest = %manifest.display(), "model pool");
        Ok(ModelPool { models, evals: Some(dir.join("evals")) })
    }

    /// Every model.
    pub fn models(&self) -> &[PoolModel] {
        &self.models
    }

    /// The model named `name`.
    pub fn by_name(&self, name: &str) -> Option<&PoolModel> {
        self.models.iter().find(|m| m.spec.name == name)
    }

    /// The model whose file has this sha256.
    pub fn by_sha256(&self, sha256: &str) -> Option<&PoolModel> {
        self.models.iter().find(|m| m.spec.sha256.eq_ignore_ascii_case(sha256))
    }

    /// The eval-model reports in `evals/` (unreadable ones are logged and skipped), newest first.
    pub fn evaluations(&self) -> Vec<EvalReport> {
        let Some(dir) = &self.evals else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut out: Vec<EvalReport> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_REPORT_BYTES))
            .filter_map(|p| {
                let r = std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<EvalReport>(&b).ok());
                if r.is_none() {
                    tracing::warn!(file = %p.display(), "not an eval-model report; skipped");
                }
                r
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
        out
    }
}
