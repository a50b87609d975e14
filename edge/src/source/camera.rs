//! Camera source: detections → (with `tracking`: tracked objects, line crossings) → image zones (by the
//! bottom-centre point) → smoothed per-zone counts → readings with `classes`, `conflict`, density over the zone's
//! ground area from the homography, and a line's flows on its zone.

use chrono::{DateTime, Utc};
use crowdgrid_proto::{ClassCounts, Reading, SourceKind, Tracked};

use super::camera_tracking::CameraTracking;
use super::vision_run::{self, FrameCounter, PipelineSettings};
use super::{Ids, SourceContext, SourceError, Started};
use crate::config::CameraConfig;
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
}

impl CameraCounter {
    /// Builds the image zones with their ground areas; errors name the source.
    pub fn new(c: &CameraConfig, ids: Ids, site: &crowdgrid_proto::site::Site) -> Result<Self, SourceError> {
        let bad = |message: String| SourceError::Config { source_id: ids.source_id.clone(), message };
        let h = Homography::fit(&c.calibration.image, &c.calibration.ground)
            .map_err(|e| bad(format!("calibration: {e}")))?;
        let mut zones = Vec::new();
        for z in &c.zones {
            let site_zone = site
                .zone(&z.zone)
                .ok_or_else(|| SourceError::UnknownZone { source_id: ids.source_id.clone(), zone: z.zone.clone() })?;
            let area_m2 = h
                .ground_area(&z.polygon)
                .filter(|a| a.is_finite() && *a > 0.0)
                .ok_or_else(|| bad(format!("zone {}: no ground area", z.zone)))?;
            let vehicle_lane = z.vehicle_lane.unwrap_or(site_zone.config.kind == "vehicle_lane");
            tracing::info!(source = %ids.source_id, zone = %z.zone, area_m2, vehicle_lane, "camera zone");
            zones.push(ImageZone { zone: z.zone.clone(), polygon: z.polygon.clone(), vehicle_lane, area_m2 });
        }
        let tracking = c.tracking.as_ref().map(|t| (CameraTracking::new(t, &zones), Smoother::new(c.smoothing_frames)));
        Ok(Self { ids, zones, smoother: Smoother::new(c.smoothing_frames), confidence: c.confidence, tracking })
    }
}

impl FrameCounter for CameraCounter {
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
