//! `models/manifest.toml`: what each vendored model is, how to feed it and how to read it; the sha256 is
//! checked before a model is loaded.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The output layouts the detector understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// NanoDet GFL head: per stride a `[1, N, C]` score tensor and a `[1, N, 44]` box-bin tensor.
    NanodetGfl,
    /// YOLOv8-style `[1, 4 + C, N]` (cx, cy, w, h, class scores).
    Yolov8,
    /// TensorFlow object-detection SSD with NMS in the graph (uint8 NHWC input).
    TfSsd,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    /// Blue, green, red (OpenCV's order).
    Bgr,
    /// Red, green, blue.
    Rgb,
}

/// One model in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name the config refers to.
    pub name: String,
    /// File, relative to the manifest.
    pub file: PathBuf,
    /// Version / provenance tag.
    pub version: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Output layout.
    pub layout: Layout,
    /// Input side in pixels (the square the model was trained at; the long side when `dynamic_hw`).
    pub input_size: u32,
    /// The input's height and width are free (any multiple of 32): frames can be letterboxed to the
    /// smallest rectangle instead of the square (`model.fit_input`).
    #[serde(default)]
    pub dynamic_hw: bool,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Per-channel mean subtracted (in the model's channel order); float inputs only.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel divisor (in the model's channel order); float inputs only.
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Raw pixel value of the letterbox padding.
    #[serde(default)]
    pub pad_value: u8,
    /// Number of classes the head outputs.
    pub classes: usize,
    /// Model class indices counted as persons.
    pub person_classes: Vec<usize>,
    /// Model class indices counted as vehicles.
    #[serde(default)]
    pub vehicle_classes: Vec<usize>,
    /// Licence of the weights.
    pub licence: String,
    /// Where the weights come from.
    pub source: String,
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

/// The manifest file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every vendored model.
    pub models: Vec<ModelSpec>,
}

/// Why a model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest or model file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// The manifest is not valid TOML for [`Manifest`].
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// No model of that name.
    #[error("{path}: no model named {name:?} (have: {have})")]
    UnknownModel {
        /// The manifest.
        path: String,
        /// The name asked for.
        name: String,
        /// Names present.
        have: String,
    },
    /// The file's sha256 is not the manifest's.
    #[error("{path}: sha256 {actual} does not match the manifest's {expected}")]
    Checksum {
        /// The model file.
        path: String,
        /// From the manifest.
        expected: String,
        /// Computed.
        actual: String,
    },
}

impl Manifest {
    /// Reads `path`, finds model `name` and returns it with its file path resolved against the manifest.
    pub fn find(path: &Path, name: &str) -> Result<ModelSpec, ManifestError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Io { path: p.clone(), error })?;
        let m: Manifest =
            toml::from_str(&text).map_err(|e| ManifestError::Parse { path: p.clone(), message: e.to_string() })?;
        let have = m.models.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        let mut spec = m.models.into_iter().find(|s| s.name == name).ok_or_else(|| ManifestError::UnknownModel {
            path: p,
            name: name.to_string(),
            have,
        })?;
        spec.file = path.parent().unwrap_or(Path::new(".")).join(&spec.file);
        Ok(spec)
    }
}

/// Reads the model file, checking its sha256 against the manifest.
pub fn read_verified(spec: &ModelSpec) -> Result<Vec<u8>, ManifestError> {
    let path = spec.file.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(&spec.file)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|error| ManifestError::Io { path: path.clone(), error })?;
    let actual = hex(&Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(spec.sha256.trim()) {
        return Err(ManifestError::Checksum { path, expected: spec.sha256.clone(), actual });
    }
    Ok(bytes)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_manifest() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml")
    }

    #[test]
    fn vendored_models_match_their_checksums() {
        for name in ["nanodet-g-coco", "nanodet-g-coco-int8", "ssdlite-mnv2-person"] {
            let spec = Manifest::find(&repo_manifest(), name).unwrap();
            let bytes = read_verified(&spec).unwrap();
            assert!(bytes.len() > 1_000_000, "{name}: {} bytes", bytes.len());
        }
        let e = Manifest::find(&repo_manifest(), "yolo-nope").unwrap_err();
        assert!(e.to_string().contains("nanodet-g-coco"), "{e}");
    }

    #[test]
    fn a_tampered_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Manifest::find(&repo_manifest(), "nanodet-g-coco").unwrap();
        let f = dir.path().join("m.onnx");
        std::fs::write(&f, b"not the model").unwrap();
        spec.file = f;
        let e = read_verified(&spec).unwrap_err();
        assert!(matches!(e, ManifestError::Checksum { .. }), "{e}");
        spec.file = dir.path().join("missing.onnx");
        assert!(read_verified(&spec).unwrap_err().to_string().contains("missing.onnx"));
    }
}
