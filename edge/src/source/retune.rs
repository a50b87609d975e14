//! What a camera's pipeline runs — model, counting thresholds, NMS IoU, the lowest scores its sessions keep — and
//! how a [`Retune`] from the centre changes it: a threshold its sessions already cover at once; a new model, a new
//! IoU or a lower threshold by loading fresh sessions on a side thread and self-checking them
//! ([`crate::vision::self_check`]) while the running ones keep counting (`vision_run` swaps them when they are
//! ready). Either way the camera's status entry says which settings version it runs, or why it refused one.

use super::vision_run::PipelineSettings;
use super::{Ids, SourceContext};
use crate::tuning::{ModelChange, Retune};
use crate::vision::detect::{Class, Detection};
use crate::vision::manifest::ModelSpec;
use crate::vision::model::{Detector, ModelConfig};

/// What a camera runs now: the model, the counting thresholds, the NMS IoU and the lowest scores its sessions
/// keep, and the centre's settings version they come from (0: the edge file's).
#[derive(Debug, Clone)]
pub(super) struct Running {
    pub(super) version: i64,
    person: f32,
    vehicle: f32,
    nms_iou: f32,
    floor: (f32, f32),
    pool_spec: Option<ModelSpec>,
    pub(super) spec_name: String,
    spec_version: String,
    sha256: String,
}

/// A model or IoU change being loaded and self-checked off the pipeline's thread.
pub(super) struct Loading {
    pub(super) next: Running,
    pub(super) done: std::sync::mpsc::Receiver<Result<Vec<Detector>, String>>,
}

impl Running {
    pub(super) fn configured(set: &PipelineSettings) -> Running {
        Running {
            version: 0,
            person: set.model.person_threshold,
            vehicle: set.model.vehicle_threshold,
            nms_iou: set.model.nms_iou,
            floor: (0.0, 0.0),
            pool_spec: None,
            spec_name: set.model.name.clone(),
            spec_version: String::new(),
            sha256: String::new(),
        }
    }

    /// The detector config for these thresholds. Sessions keep persons down to the self-check's score (so a new
    /// model can be checked and a threshold lowered to there without reloading) and to the privacy threshold when
    /// snapshots blur them; what is counted is filtered at the counting thresholds ([`Running::counts`]).
    pub(super) fn load_config(&self, set: &PipelineSettings) -> ModelConfig {
        let mut m = set.model.clone();
        m.person_threshold = self.person.min(crate::vision::self_check::SCORE);
        m.vehicle_threshold = self.vehicle;
        m.nms_iou = self.nms_iou;
        if set.evidence.is_some() {
            m.person_threshold = m.person_threshold.min(m.privacy_threshold);
        }
        m
    }

    pub(super) fn loaded(&mut self, d: &Detector) {
        let spec = d.spec();
        self.spec_name = spec.name.clone();
        self.spec_version = spec.version.clone();
        self.sha256 = spec.sha256.clone();
        self.floor = (d.person_floor(), d.vehicle_floor());
    }

    pub(super) fn counts(&self, d: &Detection) -> bool {
        d.score >= if d.class == Class::Person { self.person } else { self.vehicle }
    }

    pub(super) fn info(&self, source: &str, refused: Option<String>) -> crowdgrid_proto::ModelInfo {
        crowdgrid_proto::ModelInfo {
            name: self.spec_name.clone(),
            version: self.spec_version.clone(),
            sha256: self.sha256.clone(),
            source: source.to_string(),
            settings_version: (self.version > 0).then_some(self.version),
            person_threshold: Some(self.person),
            vehicle_threshold: Some(self.vehicle),
            nms_iou: Some(self.nms_iou),
            refused,
        }
    }

    pub(super) fn refuse(&self, ids: &Ids, cx: &SourceContext, version: i64, why: &str) {
        tracing::warn!(source = %ids.source_id, version, why, "camera settings refused; the camera keeps what it runs");
        cx.health.rejected(&ids.source_id, ids.kind.as_str(), "settings_refused", &format!("version {version}: {why}"));
        cx.health.model(self.info(&ids.source_id, Some(format!("version {version}: {why}"))));
    }

    /// Applies `r`: thresholds at or above what the sessions keep at once; a new model, a new IoU or a lower
    /// threshold by loading new sessions on a side thread (returned), self-checked before they are used.
    pub(super) fn retune(
        &mut self,
        r: Retune,
        set: &PipelineSettings,
        ids: &Ids,
        cx: &SourceContext,
    ) -> Option<Loading> {
        let pool_spec = match r.model {
            ModelChange::Refused(why) => {
                self.refuse(ids, cx, r.version, &why);
                return None;
            }
            ModelChange::Configured => None,
            ModelChange::Pool(spec) => Some(*spec),
        };
        let mut next = self.clone();
        next.version = r.version;
        next.person = r.person_threshold.unwrap_or(set.model.person_threshold);
        next.vehicle = r.vehicle_threshold.unwrap_or(set.model.vehicle_threshold);
        next.nms_iou = r.nms_iou.unwrap_or(set.model.nms_iou);
        let same_model = match (&pool_spec, &self.pool_spec) {
            (None, None) => true,
            (Some(a), Some(b)) => a.sha256 == b.sha256,
            _ => false,
        };
        let cfg = next.load_config(set);
        if same_model
            && next.nms_iou == self.nms_iou
            && cfg.person_threshold >= self.floor.0
            && next.vehicle >= self.floor.1
        {
            *self = next;
            cx.health.model(self.info(&ids.source_id, None));
            tracing::info!(source = %ids.source_id, version = self.version, person = self.person, vehicle = self.vehicle, "camera thresholds changed");
            return None;
        }
        next.pool_spec = pool_spec.clone();
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let source = ids.source_id.clone();
        next.floor = (cfg.person_threshold, cfg.vehicle_threshold);
        let spawned = std::thread::Builder::new().name(format!("load-{source}")).spawn(move || {
            let loaded = match pool_spec {
                Some(spec) => Detector::load_workers_from(&cfg, spec),
                None => Detector::load_workers(&cfg),
            };
            let res = loaded.map_err(|e| e.to_string()).and_then(|mut dets| {
                let first = dets.first_mut().ok_or_else(|| "no session".to_string())?;
                let found = crate::vision::self_check::run(first)?;
                tracing::info!(source = %source, persons = found, "new detector passed the self-check");
                Ok(dets)
            });
            let _ = tx.send(res);
        });
        match spawned {
            Ok(_) => {
                // The new sessions' model, as the loader will have it.
                if let Some(spec) = &next.pool_spec {
                    next.spec_name = spec.name.clone();
                    next.spec_version = spec.version.clone();
                    next.sha256 = spec.sha256.clone();
                } else if let Ok(spec) = crate::vision::manifest::Manifest::find(&set.model.manifest, &set.model.name) {
                    next.spec_name = spec.name;
                    next.spec_version = spec.version;
                    next.sha256 = spec.sha256;
                }
                Some(Loading { next, done })
            }
            Err(e) => {
                self.refuse(ids, cx, r.version, &format!("cannot start the loader thread: {e}"));
                None
            }
        }
    }
}
