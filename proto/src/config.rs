//! Loading TOML configuration files and reporting every problem at once.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Collects validation problems, each with the path of the offending key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Problems(Vec<String>);

impl Problems {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem at `path` (e.g. `zones[2].grid`).
    pub fn push(&mut self, path: impl fmt::Display, msg: impl fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded problems, in the order found.
    pub fn items(&self) -> &[String] {
        &self.0
    }

    /// Appends another list, prefixing each of its paths.
    pub fn extend_prefixed(&mut self, prefix: &str, other: Problems) {
        for p in other.0 {
            self.0.push(format!("{prefix}{p}"));
        }
    }

    /// Turns the list into a result for the file at `path`.
    pub fn into_result(self, path: &Path) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems: self.0 })
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, missing field).
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// The file parsed, but its values are inconsistent or out of range.
    #[error("{}: {} problem(s):\n  - {}", path.display(), problems.len(), problems.join("\n  - "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// Reads and parses a TOML file into `T` (whose types should use `deny_unknown_fields`).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse_toml(path, &text)
}

/// The `site = "…"` of a TOML document: rules files and counts mappings name the site they are for.
pub fn site_key(doc: &toml::Table) -> Option<String> {
    doc.get("site")?.as_str().map(str::to_string)
}

/// Parses TOML text that came from `path` (used for error messages only).
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Resolves `rel` against the directory holding the config file `base`.
pub fn resolve(base: &Path, rel: &Path) -> PathBuf {
    if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        base.parent().unwrap_or_else(|| Path::new(".")).join(rel)
    }
}

/// Longest duration any setting may ask for, seconds (ten years): longer ones are typos, and would overflow the
/// date arithmetic they feed.
pub const MAX_SECONDS: i64 = 10 * 366 * 86_400;

/// Checks a duration setting in seconds: `0..=MAX_SECONDS` (`positive`: from 1).
pub fn check_seconds(problems: &mut Problems, path: impl fmt::Display, value: i64, positive: bool) {
    let min = i64::from(positive);
    if value < min || value > MAX_SECONDS {
        problems.push(path, format!("{value} s is out of range ({min} to {MAX_SECONDS} s)"));
    }
}

/// Exit code of a command whose configuration is invalid (EX_USAGE), the same for every crowdgrid binary.
pub const EXIT_CONFIG: u8 = 64;

/// `check-config` of every binary: runs `check` on each file, printing `ok: {path} ({what it is})` or the error
/// with every problem; true when all passed.
pub fn check_files<P: AsRef<Path>>(paths: &[P], check: impl Fn(&Path) -> Result<String, ConfigError>) -> bool {
    let mut bad = 0;
    for p in paths {
        match check(p.as_ref()) {
            Ok(what) => println!("ok: {} ({what})", p.as_ref().display()),
            Err(e) => {
                bad += 1;
                eprintln!("Invalid configuration: {e}");
            }
        }
    }
    bad == 0
}

/// Checks that an identifier is usable as one MQTT topic level and a URL path segment.
pub fn check_id(problems: &mut Problems, path: impl fmt::Display, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        problems.push(path, format!("{id:?} must be 1-64 characters of a-z, 0-9, '-' or '_'"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        let mut p = Problems::new();
        check_id(&mut p, "a", "west-taihu_1");
        assert!(p.is_empty());
        check_id(&mut p, "b", "Bad/Id");
        check_id(&mut p, "c", "");
        check_id(&mut p, "d", "a+b");
        assert_eq!(p.items().len(), 3);
        assert!(p.items()[0].starts_with("b: "));
    }

    #[test]
    fn invalid_lists_every_problem() {
        let mut p = Problems::new();
        p.push("x", "one");
        p.push("y", "two");
        let err = p.into_result(Path::new("f.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("2 problem(s)"), "{text}");
        assert!(text.contains("x: one") && text.contains("y: two"), "{text}");
    }
}
