//! Per-zone fusion: the latest estimate of every (zone, source) combined into one `fused` reading
//! per zone, weighted by confidence.
//!
//! `density = Σ(confidenceᵢ·densityᵢ) / Σconfidenceᵢ` over the fresh estimates (a plain mean when
//! every confidence is 0); `count = density × zone area`; `confidence = max confidenceᵢ`; per-class
//! counts are summed when present; in/out flows are summed over the zone's gate estimates; the people–vehicle
//! conflict is the largest any source reports.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{ClassCounts, Reading, SourceKind};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::FusionConfig;

/// Latest estimate per (zone, source id); pure and synchronous.
#[derive(Debug, Clone)]
pub struct Fusion {
    site: Arc<Site>,
    source_id: String,
    stale_after: chrono::Duration,
    latest: BTreeMap<(String, String), Reading>,
}

impl Fusion {
    /// Fusion for `site`; fused readings are labelled `{edge_id}/fused`; estimates older than
    /// `stale_after` are left out.
    pub fn new(site: Arc<Site>, edge_id: &str, stale_after: chrono::Duration) -> Self {
        Self { site, source_id: format!("{edge_id}/fused"), stale_after, latest: BTreeMap::new() }
    }

    /// Remembers `r` as the latest estimate of its (zone, source id), unless a newer one is held.
    /// Fused readings and zones outside the site are ignored.
    pub fn observe(&mut self, r: &Reading) {
        if r.source == SourceKind::Fused || self.site.zone(&r.zone).is_none() {
            return;
        }
        let key = (r.zone.clone(), r.source_id.clone());
        match self.latest.get(&key) {
            Some(old) if old.ts > r.ts => {}
            _ => {
                self.latest.insert(key, r.clone());
            }
        }
    }

    /// One fused reading per zone with at least one fresh estimate, stamped `now`, in zone order.
    pub fn fused(&self, now: DateTime<Utc>) -> Vec<Reading> {
        let mut by_zone: BTreeMap<&str, Vec<&Reading>> = BTreeMap::new();
        for ((zone, _), r) in &self.latest {
            if now - r.ts <= self.stale_after {
                by_zone.entry(zone.as_str()).or_default().push(r);
            }
        }
        by_zone.into_iter().filter_map(|(zone, rs)| self.fuse_zone(zone, &rs, now)).collect()
    }

    fn fuse_zone(&self, zone: &str, rs: &[&Reading], now: DateTime<Utc>) -> Option<Reading> {
        let area = self.site.zone(zone)?.area_m2;
        let usable: Vec<&Reading> = rs.iter().copied().filter(|r| r.density.is_finite()).collect();
        if usable.is_empty() {
            return None;
        }
        let weight = |r: &Reading| {
            if r.confidence.is_finite() {
                r.confidence.max(0.0)
            } else {
                0.0
            }
        };
        let total: f64 = usable.iter().map(|r| weight(r)).sum();
        let density = if total > 0.0 {
            usable.iter().map(|r| weight(r) * r.density).sum::<f64>() / total
        } else {
            usable.iter().map(|r| r.density).sum::<f64>() / usable.len() as f64
        };
        let confidence = usable.iter().map(|r| weight(r)).fold(0.0, f64::max).min(1.0);
        let mut out = Reading::new(
            &self.site.config.id,
            zone,
            SourceKind::Fused,
            &self.source_id,
            now,
            density * area,
            area,
            confidence,
        );
        out.density = density;
        let mut classes: Option<ClassCounts> = None;
        for c in usable.iter().filter_map(|r| r.classes) {
            let acc = classes.get_or_insert_with(ClassCounts::default);
            acc.person += c.person;
            acc.vehicle += c.vehicle;
        }
        out.classes = classes;
        // Conflict is a per-moment yes/no-ish count: the worst view of the zone counts.
        out.conflict = usable.iter().filter_map(|r| r.conflict).filter(|v| v.is_finite()).reduce(f64::max);
        let gates = || usable.iter().filter(|r| r.source == SourceKind::Gate);
        out.inflow_per_min = gates().filter_map(|r| r.inflow_per_min).reduce(|a, b| a + b);
        out.outflow_per_min = gates().filter_map(|r| r.outflow_per_min).reduce(|a, b| a + b);
        Some(out)
    }
}

/// Forwards every reading from `rx` to `sink` unchanged (the per-source series), in batches of up
/// to 1000, and every `cfg.interval_ms` the fused readings. On shutdown (or when every sender is
/// gone) it drains `rx`, emits a final fused batch and returns.
pub async fn run<F, Fut>(
    cfg: FusionConfig,
    mut fusion: Fusion,
    mut rx: mpsc::Receiver<Reading>,
    mut sink: F,
    shutdown: CancellationToken,
) where
    F: FnMut(Vec<Reading>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(1000);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let fused = fusion.fused(Utc::now());
                if !fused.is_empty() {
                    sink(fused).await;
                }
            }
            n = rx.recv_many(&mut buf, 1000) => {
                if n == 0 {
                    tracing::debug!("fusion input closed");
                    break;
                }
                forward(&mut fusion, &mut buf, &mut sink).await;
            }
        }
    }
    // Drain: no new readings are admitted, everything already queued is forwarded.
    rx.close();
    let mut drained = 0;
    while rx.recv_many(&mut buf, 1000).await > 0 {
        drained += buf.len();
        forward(&mut fusion, &mut buf, &mut sink).await;
    }
    let fused = fusion.fused(Utc::now());
    tracing::info!(drained, fused = fused.len(), "fusion stopped");
    if !fused.is_empty() {
        sink(fused).await;
    }
}

async fn forward<F, Fut>(fusion: &mut Fusion, buf: &mut Vec<Reading>, sink: &mut F)
where
    F: FnMut(Vec<Reading>) -> Fut,
    Fut: Future<Output = ()>,
{
    for r in buf.iter() {
        fusion.observe(r);
    }
    sink(std::mem::take(buf)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing;

    fn reading(zone: &str, kind: SourceKind, id: &str, ts: DateTime<Utc>, count: f64, conf: f64) -> Reading {
        let area = if zone == "plaza" { 1000.0 } else { 500.0 };
        Reading::new("west-lake", zone, kind, id, ts, count, area, conf)
    }

    #[test]
    fn confidence_weighted_mean_with_worked_numbers() {
        let now = Utc::now();
        let mut f = Fusion::new(testing::site(), "edge-1", chrono::Duration::seconds(300));
        // Base station: 2.0 people/m² at confidence 0.6; gate: 1.0 at 0.9; simulated: 4.0 at 0.5 (stale).
        f.observe(&reading("plaza", SourceKind::BaseStation, "edge-1/bs", now, 2000.0, 0.6));
        let mut gate = reading("plaza", SourceKind::Gate, "edge-1/gate", now, 1000.0, 0.9);
        gate.inflow_per_min = Some(12.0);
        gate.outflow_per_min = Some(3.0);
        f.observe(&gate);
        f.observe(&reading(
            "plaza",
            SourceKind::Simulated,
            "edge-1/sim",
            now - chrono::Duration::seconds(301),
            4000.0,
            0.5,
        ));
        let mut cam = reading("beach", SourceKind::Camera, "edge-1/cam", now, 100.0, 0.8);
        cam.classes = Some(ClassCounts { person: 100.0, vehicle: 2.0 });
        cam.conflict = Some(1.5);
        f.observe(&cam);
        // A drone over the beach (confidence 0: it does not move the density) seeing less conflict.
        let mut drone = reading("beach", SourceKind::Drone, "edge-1/drone", now, 100.0, 0.0);
        drone.conflict = Some(0.5);
        f.observe(&drone);
        f.observe(&reading("beach", SourceKind::Fused, "edge-1/fused", now, 400.0, 1.0));
        f.observe(&reading("nowhere", SourceKind::Camera, "x", now, 1.0, 1.0));

        let out = f.fused(now);
        assert_eq!(out.len(), 2);
        let (beach, plaza) = (&out[0], &out[1]);
        // (0.6·2.0 + 0.9·1.0) / (0.6 + 0.9) = 2.1 / 1.5 = 1.4 people/m² → 1400 people on 1000 m².
        assert!((plaza.density - 1.4).abs() < 1e-12, "{}", plaza.density);
        assert!((plaza.count - 1400.0).abs() < 1e-9);
        assert_eq!((plaza.confidence, plaza.area_m2, plaza.ts), (0.9, 1000.0, now));
        assert_eq!((plaza.inflow_per_min, plaza.outflow_per_min), (Some(12.0), Some(3.0)));
        assert_eq!(
            (plaza.source, plaza.source_id.as_str(), plaza.site.as_str()),
            (SourceKind::Fused, "edge-1/fused", "west-lake")
        );
        assert!((beach.density - 0.2).abs() < 1e-12 && (beach.count - 100.0).abs() < 1e-9);
        assert_eq!(beach.inflow_per_min, None);
        assert_eq!(beach.classes, Some(ClassCounts { person: 100.0, vehicle: 2.0 }));
        assert_eq!((beach.conflict, plaza.conflict), (Some(1.5), None), "the worst view counts; none without cameras");
    }

    #[test]
    fn newest_estimate_wins_and_stale_zones_vanish() {
        let now = Utc::now();
        let mut f = Fusion::new(testing::site(), "e", chrono::Duration::seconds(60));
        f.observe(&reading("plaza", SourceKind::Gate, "e/g", now, 500.0, 0.9));
        f.observe(&reading("plaza", SourceKind::Gate, "e/g", now - chrono::Duration::seconds(10), 900.0, 0.9));
        assert_eq!(f.fused(now)[0].count, 500.0);
        assert!(f.fused(now + chrono::Duration::seconds(61)).is_empty());
    }

    #[tokio::test]
    async fn run_forwards_fuses_and_drains_on_shutdown() {
        tokio::time::pause();
        let f = Fusion::new(testing::site(), "e", chrono::Duration::seconds(300));
        let (tx, rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<Reading>>();
        let cfg = FusionConfig { interval_ms: 1000, stale_after_s: 300 };
        let task = tokio::spawn(run(
            cfg,
            f,
            rx,
            move |b| {
                let out = out_tx.clone();
                async move {
                    let _ = out.send(b);
                }
            },
            shutdown.clone(),
        ));
        tx.send(reading("plaza", SourceKind::Gate, "e/g", Utc::now(), 100.0, 0.9)).await.unwrap();
        let batch = out_rx.recv().await.unwrap();
        assert_eq!((batch.len(), batch[0].source), (1, SourceKind::Gate));
        let fused = out_rx.recv().await.unwrap();
        assert_eq!((fused[0].source, fused[0].count), (SourceKind::Fused, 100.0));
        tx.send(reading("beach", SourceKind::Gate, "e/g2", Utc::now(), 50.0, 0.9)).await.unwrap();
        shutdown.cancel();
        task.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(b) = out_rx.try_recv() {
            rest.extend(b);
        }
        assert!(rest.iter().any(|r| r.source_id == "e/g2"), "queued reading forwarded");
        let last: Vec<_> = rest.iter().filter(|r| r.source == SourceKind::Fused).collect();
        assert_eq!(last.len(), 2, "final fused batch covers both zones: {rest:?}");
    }
}
