//! Camera source: detections → (with `tracking`: tracked objects, line crossings) → image zones (by the
//! bottom-centre point) → smoothed per-zone counts → readings with `classes`, `conflict`, density over the zone's
//! ground area from the homography, and a line's flows on its zone.

use chrono::{DateTime, Utc};
use crowdgrid_proto::geometry::CameraGeometry;
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{ClassCounts, Reading, SourceKind, Tracked};

use super::camera_tracking::CameraTracking;
use super::vision_run::{self, FrameCounter, PipelineSettings};
use super::{Ids, SourceContext, SourceError, Started};
use crate::config::{CameraConfig, TrackingConfig};
use crate::vision::capture::Frame;
use crate::vision::detect::{Class, Detection};
use crate::vision::geometry::Homography;
use crate::vision::zones::{self, ImageZone, Smoother};

/// The camera's counting state.
#[derive(Debug)]
pub struct CameraCounter {
    ids: Ids,
    zones: Vec<ImageZone>,
    smoother: Smoother,
    confidence: f64,
    /// With tracking: the tracker, and the detector's own counts smoothed alike (kept for comparison).
    tracking: Option<(CameraTracking, Smoother)>,
    /// What a geometry from the centre is built with: the site, the file's own geometry (a `None` from the
    /// centre means it), its tracking section and smoothing window.
    site: Site,
    file: CameraGeometry,
    tracking_cfg: Option<TrackingConfig>,
    smoothing_frames: usize,
    /// The geometry counted with now.
    geometry: CameraGeometry,
}

/// A geometry checked against the site and built, ready to swap in between two frames.
#[derive(Debug)]
pub struct Built {
    geometry: CameraGeometry,
    zones: Vec<ImageZone>,
    tracking: Option<(CameraTracking, Smoother)>,
}

impl CameraCounter {
    /// Builds the image zones with their ground areas; errors name the source.
    pub fn new(c: &CameraConfig, ids: Ids, site: &Site) -> Result<Self, SourceError> {
        let file = c.geometry();
        let mut counter = Self {
            ids,
            zones: Vec::new(),
            smoother: Smoother::new(c.smoothing_frames),
            confidence: c.confidence,
            tracking: None,
            site: site.clone(),
            file: file.clone(),
            tracking_cfg: c.tracking.clone(),
            smoothing_frames: c.smoothing_frames,
            geometry: file.clone(),
        };
        let built = counter.build(&file).map_err(|message| match message {
            BuildError::UnknownZone(zone) => {
                SourceError::UnknownZone { source_id: counter.ids.source_id.clone(), zone }
            }
            BuildError::Bad(message) => SourceError::Config { source_id: counter.ids.source_id.clone(), message },
        })?;
        for z in &built.zones {
            tracing::info!(source = %counter.ids.source_id, zone = %z.zone, area_m2 = z.area_m2, vehicle_lane = z.vehicle_lane, "camera zone");
        }
        counter.swap(built);
        Ok(counter)
    }

    fn build(&self, g: &CameraGeometry) -> Result<Built, BuildError> {
        let h = Homography::fit(&g.calibration.image, &g.calibration.ground)
            .map_err(|e| BuildError::Bad(format!("calibration: {e}")))?;
        let mut zones = Vec::new();
        for z in &g.zones {
            let site_zone = self.site.zone(&z.zone).ok_or_else(|| BuildError::UnknownZone(z.zone.clone()))?;
            let area_m2 = h
                .ground_area(&z.polygon)
                .filter(|a| a.is_finite() && *a > 0.0)
                .ok_or_else(|| BuildError::Bad(format!("zone {}: no ground area", z.zone)))?;
            let vehicle_lane = z.vehicle_lane.unwrap_or(site_zone.config.kind == "vehicle_lane");
            zones.push(ImageZone { zone: z.zone.clone(), polygon: z.polygon.clone(), vehicle_lane, area_m2 });
        }
        let tracking = match (&self.tracking_cfg, g.lines.is_empty()) {
            (Some(t), _) => {
                let t = TrackingConfig { lines: g.lines.clone(), ..t.clone() };
                Some((CameraTracking::new(&t, &zones), Smoother::new(self.smoothing_frames)))
            }
            (None, true) => None,
            (None, false) => {
                return Err(BuildError::Bad("counting lines need tracking on the camera ([sources.tracking])".into()))
            }
        };
        Ok(Built { geometry: g.clone(), zones, tracking })
    }

    fn swap(&mut self, b: Built) {
        self.zones = b.zones;
        self.tracking = b.tracking;
        self.geometry = b.geometry;
        // Zones changed: earlier frames' counts belong to other polygons.
        self.smoother = Smoother::new(self.smoothing_frames);
    }
}

enum BuildError {
    UnknownZone(String),
    Bad(String),
}

impl FrameCounter for CameraCounter {
    type Prepared = Built;

    fn prepare(&self, g: Option<&CameraGeometry>) -> Result<Built, String> {
        let g = g.unwrap_or(&self.file);
        let problems = crate::config::geometry::problems(g, &self.site);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        self.build(g).map_err(|e| match e {
            BuildError::UnknownZone(z) => format!("unknown zone {z:?}"),
            BuildError::Bad(m) => m,
        })
    }

    fn apply(&mut self, b: Built) -> bool {
        if b.geometry == self.geometry {
            return false;
        }
        tracing::info!(source = %self.ids.source_id, zones = b.zones.len(), lines = b.geometry.lines.len(), "camera geometry changed");
        self.swap(b);
        true
    }

    fn geometry(&self) -> Option<&CameraGeometry> {
        Some(&self.geometry)
    }

    fn frame(&mut self, _frame: &Frame, dets: &[Detection]) {
        let counts = match &mut self.tracking {
            Some((t, raw)) => {
                let now = Utc::now();
                raw.push(zones::count(&self.zones, dets));
                let mut c = zones::count(&self.zones, &t.frame(dets, now, &self.ids.source_id));
                for (i, counts) in c.iter_mut().enumerate().filter(|(i, _)| self.zones[*i].vehicle_lane) {
                    counts.conflict = t.lane_conflict(i, now);
                }
                c
            }
            None => zones::count(&self.zones, dets),
        };
        self.smoother.push(counts);
    }

    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading> {
        let Some(mean) = self.smoother.mean() else { return Vec::new() };
        let mut out = Vec::with_capacity(self.zones.len());
        for (i, (z, c)) in self.zones.iter().zip(mean).enumerate() {
            let mut r = self.ids.reading(&z.zone, now, c.person, z.area_m2, self.confidence);
            r.classes = Some(ClassCounts { person: c.person, vehicle: c.vehicle });
            r.conflict = Some(c.conflict);
            if let Some((t, raw)) = &mut self.tracking {
                if let Some((inflow, outflow)) = t.flows(i, Class::Person, now) {
                    r.inflow_per_min = Some(inflow);
                    r.outflow_per_min = Some(outflow);
                }
                let vehicles = t.flows(i, Class::Vehicle, now);
                let (dwell_p50_s, dwell_p90_s) = t.dwell(i, now);
                r.tracked = Some(Tracked {
                    raw_count: raw.mean().and_then(|m| m.get(i).map(|c| c.person)).unwrap_or(0.0),
                    dwell_p50_s,
                    dwell_p90_s,
                    vehicle_inflow_per_min: vehicles.map(|v| v.0),
                    vehicle_outflow_per_min: vehicles.map(|v| v.1),
                });
            }
            out.push(r);
        }
        out
    }
}

/// Starts a camera source.
pub fn start(c: &CameraConfig, cx: SourceContext) -> Result<Started, SourceError> {
    let ids = Ids::new(&cx.site, &cx.edge_id, &c.id, SourceKind::Camera);
    let counter = CameraCounter::new(c, ids.clone(), &cx.site)?;
    let set = PipelineSettings {
        evidence: c.evidence.map(|e| (c.zones.iter().map(|z| z.zone.clone()).collect(), e.max_bytes)),
        ..PipelineSettings::new(&c.video, &c.model, (c.max_fps, c.frame_queue), (c.report_interval_ms, c.max_backoff_s))
    };
    vision_run::start(counter, ids, set, cx)
}
