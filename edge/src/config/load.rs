//! Loading an edge file: reading it and its site, resolving relative paths against the file, reading the credential
//! and the CA, and validating every section against the site, every problem at once.

use std::path::Path;

use crowdgrid_proto::config::{check_id, load_toml, resolve, ConfigError, Problems};
use crowdgrid_proto::site::Site;

use super::validate::{validate_base_station, validate_gate, validate_simulated};
use super::{vision, EdgeConfig, InputConfig, SourceConfig};
use crate::vision::source_config::ModelConfig;
use crate::vision::source_config::VideoInput;

/// A loaded, validated edge configuration with its site and resolved paths.
#[derive(Debug, Clone)]
pub struct LoadedEdge {
    /// The file as written, with relative paths resolved against its directory.
    pub config: EdgeConfig,
    /// The validated site.
    pub site: Site,
}

impl EdgeConfig {
    /// Loads the file, loads its site, resolves paths and validates everything.
    pub fn load(path: &Path) -> Result<LoadedEdge, ConfigError> {
        let mut config: EdgeConfig = load_toml(path)?;
        config.resolve_paths(path);
        let site = Site::load(&config.edge.site)?;
        let mut p = Problems::new();
        if let Some(file) = &config.mqtt.credential_file {
            match std::fs::read_to_string(file) {
                Ok(text) => match crowdgrid_proto::signed::Credential::parse(&text) {
                    Ok(c) => config.mqtt.credential = Some(c),
                    Err(e) => p.push("mqtt.credential_file", format!("{}: {e}", file.display())),
                },
                Err(e) => p.push("mqtt.credential_file", format!("{}: {e}", file.display())),
            }
        }
        if let Some(ca) = &config.mqtt.tls_ca {
            match crate::tls::client_config(ca) {
                Ok(c) => config.mqtt.tls = Some(c),
                Err(e) => p.push("mqtt.tls_ca", e),
            }
        }
        config.validate(&site, &mut p);
        p.into_result(path)?;
        Ok(LoadedEdge { config, site })
    }

    /// Findings that are not errors, with their weight: each placed camera zone's fit against its site zone,
    /// or that a camera is not placed on the map. `check-config` prints them; the agent logs them at start.
    pub fn notes(&self, site: &Site) -> Vec<(crate::vision::georef::FitVerdict, String)> {
        let mut out = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if let SourceConfig::Camera(c) = s {
                out.extend(vision::camera_notes(c, site, &format!("sources[{i}]")));
            }
        }
        out
    }

    /// Where models fetched from the centre are kept: `models/` beside the queue file.
    pub fn model_cache(&self) -> std::path::PathBuf {
        self.queue.path.parent().unwrap_or(Path::new(".")).join("models")
    }

    /// Makes every relative path relative to the directory of `base` instead of the process.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.edge.site = resolve(base, &self.edge.site);
        self.queue.path = resolve(base, &self.queue.path);
        if let Some(f) = &self.mqtt.credential_file {
            self.mqtt.credential_file = Some(resolve(base, f));
        }
        if let Some(f) = &self.mqtt.tls_ca {
            self.mqtt.tls_ca = Some(resolve(base, f));
        }
        for s in &mut self.sources {
            let input = match s {
                SourceConfig::BaseStation(c) => &mut c.input,
                SourceConfig::Gate(c) => &mut c.input,
                SourceConfig::Simulated(_) => continue,
                SourceConfig::Camera(c) => {
                    resolve_vision(base, &mut c.video, &mut c.model);
                    continue;
                }
                SourceConfig::Drone(c) => {
                    resolve_vision(base, &mut c.video, &mut c.model);
                    c.telemetry = resolve(base, &c.telemetry);
                    continue;
                }
            };
            match input {
                InputConfig::FileDrop { dir, .. } => *dir = resolve(base, dir),
                InputConfig::CsvTail { path, .. } | InputConfig::Replay { path, .. } => *path = resolve(base, path),
                InputConfig::Http { .. } | InputConfig::Webhook { .. } | InputConfig::Mqtt { .. } => {}
            }
        }
    }

    /// Records every problem against `site`.
    pub fn validate(&self, site: &Site, p: &mut Problems) {
        check_id(p, "edge.id", &self.edge.id);
        if self.mqtt.keep_alive_s < 2 {
            p.push("mqtt.keep_alive_s", "must be at least 2");
        }
        if self.mqtt.status_interval_s == 0 {
            p.push("mqtt.status_interval_s", "must be positive");
        }
        let local = matches!(self.mqtt.host.as_str(), "localhost" | "127.0.0.1" | "::1")
            || self.mqtt.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !local && self.mqtt.tls_ca.is_none() {
            // The credential is the broker password and the signing key: in clear text it could be read off the
            // wire and used to forge readings.
            p.push("mqtt.tls_ca", format!("{} is not this machine: set tls_ca to reach it over TLS", self.mqtt.host));
        }
        if self.mqtt.commit_timeout_s == 0 {
            p.push("mqtt.commit_timeout_s", "must be positive");
        }
        if self.queue.max_bytes < 1024 * 1024 {
            p.push("queue.max_bytes", "must be at least 1 MiB");
        }
        if self.queue.inflight == 0 {
            p.push("queue.inflight", "must be positive");
        }
        for (key, msg) in self.tuning.problems() {
            p.push(key, msg);
        }
        if self.fusion.interval_ms == 0 {
            p.push("fusion.interval_ms", "must be positive");
        }
        if self.sources.is_empty() {
            p.push("sources", "at least one source is needed");
        }
        let mut ids = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let path = format!("sources[{i}]");
            check_id(p, format!("{path}.id"), s.id());
            if !ids.insert(s.id()) {
                p.push(format!("{path}.id"), format!("duplicate source id {:?}", s.id()));
            }
            match s {
                SourceConfig::BaseStation(c) => validate_base_station(c, site, &path, p),
                SourceConfig::Gate(c) => validate_gate(c, site, &path, p),
                SourceConfig::Simulated(c) => validate_simulated(c, site, &path, p),
                SourceConfig::Camera(c) => vision::validate_camera(c, site, &path, p),
                SourceConfig::Drone(c) => vision::validate_drone(c, site, &path, p),
            }
        }
    }
}

/// Resolves the video and model paths of a camera or drone source against the edge file.
fn resolve_vision(base: &Path, video: &mut VideoInput, model: &mut ModelConfig) {
    match video {
        VideoInput::File { path, .. } => *path = resolve(base, path),
        VideoInput::Folder { dir, .. } => *dir = resolve(base, dir),
        VideoInput::Rtsp { .. } | VideoInput::Http { .. } => {}
    }
    model.manifest = resolve(base, &model.manifest);
    if let Some(r) = &mut model.runtime_path {
        *r = resolve(base, r);
    }
}
