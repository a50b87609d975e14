//! Simulated source: per-zone densities from daily curves, for demos (labelled `simulated`).
//!
//! A simulated clock starts at `start_local` (today, site local time) or now and runs `time_scale`
//! times faster than real time; each zone's density is `base + (peak − base) × shape(local time)`,
//! with the excess over base × 1.3 on holidays, then multiplicative noise. Readings carry the real
//! wall-clock time, not the simulated one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc, Weekday};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::SourceKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};

use super::{zone_area, Ids, SourceContext, SourceError, Started};
use crate::config::{parse_hhmm, Profile, SimZone, SimulatedConfig};

/// Densities stay below the plausibility limit of 12 people/m².
pub const MAX_DENSITY: f64 = 11.9;
/// Holidays multiply the excess over base by this.
pub const HOLIDAY_FACTOR: f64 = 1.3;
/// Width (standard deviation, hours) of a school-run spike: about 30 minutes at half height.
const SCHOOL_SIGMA_H: f64 = 0.2;

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Scenic area, 0..=1 by hour of day: 0 before 08:00, rising to 1 at 14:00, 1 until 16:00,
/// back to 0 by 20:00.
pub fn scenic_shape(hour: f64) -> f64 {
    match hour {
        h if h < 8.0 => 0.0,
        h if h < 14.0 => smoothstep((h - 8.0) / 6.0),
        h if h <= 16.0 => 1.0,
        h => 1.0 - smoothstep((h - 16.0) / 4.0),
    }
}

/// School gate, 0..=1: on weekdays, spikes at 07:30 (drop-off) and 16:00 (pick-up); 0 otherwise.
pub fn school_shape(hour: f64, weekday: bool) -> f64 {
    if !weekday {
        return 0.0;
    }
    let spike = |centre: f64| (-0.5 * ((hour - centre) / SCHOOL_SIGMA_H).powi(2)).exp();
    (spike(7.5) + spike(16.0)).min(1.0)
}

/// The shape of `profile` at local time `local`, 0..=1 (flat is always 0: density stays at base).
pub fn shape(profile: Profile, local: NaiveDateTime) -> f64 {
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0 + f64::from(local.second()) / 3600.0;
    match profile {
        Profile::Scenic => scenic_shape(hour),
        Profile::School => school_shape(hour, !matches!(local.weekday(), Weekday::Sat | Weekday::Sun)),
        Profile::Flat => 0.0,
    }
}

/// Noise-free density of `zone` at local time `local`.
pub fn curve(zone: &SimZone, holiday: bool, local: NaiveDateTime) -> f64 {
    let factor = if holiday { HOLIDAY_FACTOR } else { 1.0 };
    let excess = (zone.peak - zone.base).max(0.0) * shape(zone.profile, local) * factor;
    (zone.base.max(0.0) + excess).min(MAX_DENSITY)
}

/// `density` times a uniform factor in `1 ± noise`, kept in `0..=MAX_DENSITY`.
pub fn with_noise(density: f64, noise: f64, rng: &mut impl Rng) -> f64 {
    let noise = if noise.is_finite() { noise.clamp(0.0, 0.99) } else { 0.0 };
    let factor = if noise > 0.0 { 1.0 + rng.gen_range(-noise..=noise) } else { 1.0 };
    (density * factor).clamp(0.0, MAX_DENSITY)
}

/// A clock running `scale` times real time from a local start.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start_local: NaiveDateTime,
    start: Instant,
    scale: f64,
}

impl SimClock {
    /// Simulated local time `start_local` at real instant `start`.
    pub fn new(start_local: NaiveDateTime, start: Instant, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        Self { start_local, start, scale }
    }

    /// Simulated local time at real instant `at`.
    pub fn local_at(&self, at: Instant) -> NaiveDateTime {
        let secs = at.saturating_duration_since(self.start).as_secs_f64() * self.scale;
        let delta = chrono::Duration::milliseconds((secs * 1000.0).min(1e15) as i64);
        self.start_local.checked_add_signed(delta).unwrap_or(self.start_local)
    }
}

/// Where the simulated clock starts: `start_local` on `start_date` (default: the site's local date
/// today), or the local time now.
pub fn start_local(cfg: &SimulatedConfig, site: &Site, now: DateTime<Utc>) -> Result<NaiveDateTime, String> {
    let local_now = now.naive_utc() + chrono::Duration::minutes(i64::from(site.config.utc_offset_minutes));
    let date = match &cfg.start_date {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("start_date {d:?} is not YYYY-MM-DD"))?,
        None => local_now.date(),
    };
    match &cfg.start_local {
        Some(s) => Ok(date.and_time(parse_hhmm(s).ok_or_else(|| format!("start_local {s:?} is not HH:MM"))?)),
        None => Ok(date.and_time(local_now.time())),
    }
}

/// Starts a simulated source.
pub fn start(cfg: &SimulatedConfig, cx: SourceContext) -> Result<Started, SourceError> {
    let ids = Ids::new(&cx.site, &cx.edge_id, &cfg.id, SourceKind::Simulated);
    let mut zones = Vec::new();
    for z in &cfg.zones {
        zones.push((z.clone(), zone_area(&cx.site, &z.zone, &ids.source_id)?));
    }
    let start = start_local(cfg, &cx.site, Utc::now())
        .map_err(|message| SourceError::Config { source_id: ids.source_id.clone(), message })?;
    cx.health.register(&ids.source_id, ids.kind.as_str());
    let clock = SimClock::new(start, Instant::now(), cfg.time_scale);
    tracing::info!(source = %ids.source_id, start_local = %start, time_scale = cfg.time_scale, zones = zones.len(), "simulated source started");
    let handle = tokio::spawn(run(cfg.clone(), Arc::new(ids), zones, clock, cx));
    Ok(Started { handle, bound_addr: None })
}

async fn run(cfg: SimulatedConfig, ids: Arc<Ids>, zones: Vec<(SimZone, f64)>, clock: SimClock, cx: SourceContext) {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    'run: loop {
        tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let local = clock.local_at(Instant::now());
        let now = Utc::now();
        for (z, area) in &zones {
            let density = with_noise(curve(z, cfg.holiday, local), z.noise, &mut rng);
            let r = ids.reading(&z.zone, now, density * area, *area, cfg.confidence);
            if !super::send(&cx, r).await {
                break 'run;
            }
        }
        cx.health.accepted(&ids.source_id, ids.kind.as_str(), zones.len() as u64);
        tracing::trace!(source = %ids.source_id, local = %local, "simulated readings sent");
    }
    tracing::info!(source = %ids.source_id, "source stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, hh: u32, mm: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(hh, mm, 0).unwrap()
    }

    fn zone(profile: Profile) -> SimZone {
        SimZone { zone: "plaza".into(), base: 0.5, peak: 4.5, profile, noise: 0.0 }
    }

    #[test]
    fn school_spikes_on_weekdays() {
        let z = zone(Profile::School);
        // 2026-05-04 is a Monday, 2026-05-09 a Saturday.
        assert!(curve(&z, false, at(2026, 5, 4, 16, 0)) > 4.4, "pick-up is near peak");
        assert!(curve(&z, false, at(2026, 5, 4, 7, 30)) > 4.4, "drop-off is near peak");
        assert!(curve(&z, false, at(2026, 5, 4, 11, 0)) < 0.51, "mid-morning is near base");
        assert!(curve(&z, false, at(2026, 5, 4, 16, 30)) < 2.0, "the spike is short");
        assert!(curve(&z, false, at(2026, 5, 9, 16, 0)) < 0.51, "no school run on Saturday");
    }

    #[test]
    fn scenic_builds_to_an_afternoon_peak() {
        let z = zone(Profile::Scenic);
        let d = |h, m| curve(&z, false, at(2026, 5, 4, h, m));
        assert_eq!(d(3, 0), 0.5);
        assert!(d(10, 0) > 0.5 && d(10, 0) < d(12, 0) && d(12, 0) < d(14, 0));
        assert_eq!(d(15, 0), 4.5);
        assert!(d(18, 0) < d(16, 30));
        assert_eq!(d(20, 30), 0.5);
        assert_eq!(curve(&zone(Profile::Flat), false, at(2026, 5, 4, 15, 0)), 0.5);
    }

    #[test]
    fn holiday_scales_the_excess_and_caps() {
        let z = zone(Profile::Scenic);
        let noon = at(2026, 10, 1, 15, 0);
        assert!((curve(&z, true, noon) - (0.5 + 4.0 * 1.3)).abs() < 1e-9);
        let big = SimZone { base: 2.0, peak: 11.5, ..z };
        assert_eq!(curve(&big, true, noon), MAX_DENSITY);
    }

    #[test]
    fn noise_is_bounded_and_seeded() {
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let x = with_noise(2.0, 0.1, &mut a);
            assert!((1.8..=2.2).contains(&x));
            assert_eq!(x, with_noise(2.0, 0.1, &mut b));
        }
    }

    #[test]
    fn clock_runs_scaled() {
        let t0 = Instant::now();
        let c = SimClock::new(at(2026, 5, 4, 7, 0), t0, 60.0);
        assert_eq!(c.local_at(t0 + Duration::from_secs(30)), at(2026, 5, 4, 7, 30));
    }

    #[tokio::test]
    async fn publishes_each_zone_with_wall_clock_ts() {
        tokio::time::pause();
        let (cx, mut rx) = crate::source::testing::context(16);
        let shutdown = cx.shutdown.clone();
        let cfg: SimulatedConfig = toml::from_str(
            r#"id = "sim"
interval_ms = 1000
time_scale = 3600
start_local = "07:30"
zones = [{ zone = "plaza", base = 0.5, peak = 4.5, profile = "flat", noise = 0.0 },
         { zone = "beach", base = 1.0, peak = 2.0, profile = "flat" }]"#,
        )
        .unwrap();
        let before = Utc::now();
        let started = start(&cfg, cx).unwrap();
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((a.zone.as_str(), a.count, a.density), ("plaza", 500.0, 0.5));
        assert_eq!((b.zone.as_str(), b.source, b.source_id.as_str()), ("beach", SourceKind::Simulated, "edge-1/sim"));
        assert!(a.ts >= before && a.ts - before < chrono::Duration::seconds(5));
        assert_eq!(a.confidence, 0.5);
        shutdown.cancel();
        started.handle.await.unwrap();
    }
}
