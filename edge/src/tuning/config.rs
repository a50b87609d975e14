//! `[tuning]` of the edge file: where models assigned by the centre are downloaded from.

use serde::{Deserialize, Serialize};

/// `[tuning]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningConfig {
    /// The centre's API base URL (`http://host:port`) models of its pool are fetched from. Without it the
    /// edge still takes thresholds from the centre, and refuses model assignments (saying so in its status).
    #[serde(default)]
    pub centre_api: Option<String>,
}

impl TuningConfig {
    /// Problems with the values, each with its key.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(u) = &self.centre_api {
            match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => out.push(("tuning.centre_api".into(), format!("{u:?} is not an http(s) URL"))),
            }
        }
        out
    }
}
