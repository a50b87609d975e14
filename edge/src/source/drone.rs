//! Drone source: detections → ground positions through the frame's telemetry → people per site zone over
//! the part of the zone in view, smoothed over recent frames.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use crowdgrid_proto::{ClassCounts, Reading, SourceKind};
use geo::Polygon;

use super::vision_run::{self, FrameCounter, PipelineSettings};
use super::{Ids, SourceContext, SourceError, Started};
use crate::config::DroneConfig;
use crate::vision::capture::Frame;
use crate::vision::detect::Detection;
use crate::vision::drone::{at_frame, load_telemetry, zone_views, Telemetry, ZoneView};

/// The drone's counting state.
#[derive(Debug)]
pub struct DroneCounter {
    ids: Ids,
    telemetry: Vec<Telemetry>,
    /// (zone id, polygon, is a vehicle lane).
    zones: Vec<(String, Polygon<f64>, bool)>,
    window: usize,
    history: VecDeque<Vec<ZoneView>>,
    min_seen_m2: f64,
    confidence: f64,
}

impl DroneCounter {
    /// Loads the telemetry and picks the zones.
    pub fn new(c: &DroneConfig, ids: Ids, site: &crowdgrid_proto::site::Site) -> Result<Self, SourceError> {
        let telemetry = load_telemetry(&c.telemetry)
            .map_err(|e| SourceError::Config { source_id: ids.source_id.clone(), message: e.to_string() })?;
        let mut zones = Vec::new();
        for z in &site.zones {
            if c.zones.as_ref().is_none_or(|list| list.contains(&z.config.id)) {
                zones.push((z.config.id.clone(), z.polygon.clone(), z.config.kind == "vehicle_lane"));
            }
        }
        Ok(Self {
            ids,
            telemetry,
            zones,
            window: c.smoothing_frames.max(1),
            history: VecDeque::new(),
            min_seen_m2: c.min_seen_m2,
            confidence: c.confidence,
        })
    }
}

impl FrameCounter for DroneCounter {
    type Prepared = ();

    fn prepare(&self, g: Option<&crowdgrid_proto::geometry::CameraGeometry>) -> Result<(), String> {
        match g {
            None => Ok(()),
            Some(_) => Err("a drone's zones come from its telemetry; it takes no image geometry".into()),
        }
    }

    fn apply(&mut self, (): ()) -> bool {
        false
    }

    fn geometry(&self) -> Option<&crowdgrid_proto::geometry::CameraGeometry> {
        None
    }

    fn frame(&mut self, frame: &Frame, dets: &[Detection]) {
        use opencv::prelude::MatTraitConst;
        let Some(t) = at_frame(&self.telemetry, frame.local_index) else { return };
        let (w, h) = (frame.mat.cols() as f64, frame.mat.rows() as f64);
        let views = zone_views(t, w, h, dets, self.zones.iter().map(|(id, p, _)| (id.as_str(), p)), self.min_seen_m2);
        if self.history.len() == self.window {
            self.history.pop_front();
        }
        self.history.push_back(views);
    }

    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading> {
        // Per zone: mean person/vehicle and seen area over the frames in which it was in view.
        let mut acc: BTreeMap<&str, (f64, f64, f64, f64)> = BTreeMap::new();
        for v in self.history.iter().flatten() {
            let e = acc.entry(v.zone.as_str()).or_default();
            *e = (e.0 + v.person, e.1 + v.vehicle, e.2 + v.seen_m2, e.3 + 1.0);
        }
        acc.into_iter()
            .map(|(zone, (p, v, a, n))| {
                let (person, vehicle, area) = (p / n, v / n, a / n);
                let lane = self.zones.iter().any(|(id, _, lane)| id == zone && *lane);
                let mut r = self.ids.reading(zone, now, person, area, self.confidence);
                r.classes = Some(ClassCounts { person, vehicle });
                r.conflict = Some(if lane { person } else { person.min(vehicle) });
                r
            })
            .collect()
    }
}

/// Starts a drone source.
pub fn start(c: &DroneConfig, cx: SourceContext) -> Result<Started, SourceError> {
    let ids = Ids::new(&cx.site, &cx.edge_id, &c.id, SourceKind::Drone);
    let counter = DroneCounter::new(c, ids.clone(), &cx.site)?;
    let set =
        PipelineSettings::new(&c.video, &c.model, (c.max_fps, c.frame_queue), (c.report_interval_ms, c.max_backoff_s));
    vision_run::start(counter, ids, set, cx)
}
