//! Checking one `[[rule]]` against its site and compiling it; every problem is recorded with its path.

use chrono::Duration;
use crowdgrid_proto::config::{check_id, Problems};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::Level;

use super::compile::{zone_target, Metric, Rule, Target};
use super::config::{LevelsConfig, MetricName, RuleConfig};
use super::machine::{Levels, Timing};
use super::schedule::{parse_instant, Mute, Schedule};
use super::Audience;

/// Compiles `rc` (at `path`, e.g. `rule[2]`) for `site`; `None` when it has problems.
pub fn compile_rule(path: &str, rc: &RuleConfig, site: &Site, p: &mut Problems) -> Option<(Rule, Vec<Target>)> {
    let before = p.items().len();
    check_id(p, format!("{path}.id"), &rc.id);
    let m = rc.metric;
    let is = |names: &[MetricName]| names.contains(&m);
    use MetricName::*;
    let misplaced = [
        ("horizon_s", rc.horizon_s.is_some(), is(&[Predictive])),
        ("window_s", rc.window_s.is_some(), is(&[Predictive])),
        ("min_points", rc.min_points.is_some(), is(&[Predictive])),
        ("expected_every_s", rc.expected_every_s.is_some(), is(&[Silent])),
        ("source_kinds", rc.source_kinds.is_some(), is(&[Silent])),
        ("factor", rc.factor.is_some(), is(&[Disagree])),
        ("min_density", rc.min_density.is_some(), is(&[Disagree])),
        ("max_age_s", rc.max_age_s.is_some(), is(&[Disagree])),
        ("levels", rc.levels.is_some(), is(&[Density, Occupancy, Inflow, Conflict, Predictive])),
        ("fire_from", rc.fire_from.is_some(), is(&[Density, Occupancy, Inflow, Conflict])),
    ];
    for (key, set, allowed) in misplaced {
        if set && !allowed {
            p.push(format!("{path}.{key}"), format!("not used by metric = {:?}", metric_str(m)));
        }
    }
    let metric = metric(path, rc, p);
    for (key, v) in [("for_s", Some(rc.for_s)), ("clear_for_s", rc.clear_for_s), ("cooldown_s", Some(rc.cooldown_s))] {
        if let Some(v) = v {
            crowdgrid_proto::config::check_seconds(p, format!("{path}.{key}"), v, false);
        }
    }
    let clear_default = if m == Silent { 0 } else { 120 };
    // Clamped so an out-of-range value (already a problem) cannot overflow; the rest is still checked.
    let secs = |v: i64| Duration::seconds(v.clamp(0, crowdgrid_proto::config::MAX_SECONDS));
    let timing = Timing {
        for_: secs(rc.for_s),
        clear_for: secs(rc.clear_for_s.unwrap_or(clear_default)),
        cooldown: secs(rc.cooldown_s),
    };
    let schedule = rc.schedule.as_ref().and_then(|s| Schedule::compile(s, &format!("{path}.schedule"), p));
    let mut mute = Vec::new();
    for (i, w) in rc.mute.iter().enumerate() {
        match (parse_instant(&w.from), parse_instant(&w.to)) {
            (Some(from), Some(to)) if from < to => mute.push(Mute { from, to }),
            (Some(_), Some(_)) => p.push(format!("{path}.mute[{i}]"), "from must be before to"),
            _ => p.push(format!("{path}.mute[{i}]"), "from and to must be RFC 3339 times with an offset"),
        }
    }
    if rc.clear_ratio.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
        p.push(format!("{path}.clear_ratio"), "must be in (0, 1]");
    }
    let fire_from = rc.fire_from.unwrap_or(Level::Warning);
    if fire_from == Level::Normal {
        p.push(format!("{path}.fire_from"), "must be notice, warning or critical");
    }
    let fixed = fixed_levels(path, rc, fire_from, p);
    let zones = select_zones(path, rc, site, p);
    let mut targets = Vec::new();
    for zi in zones {
        let zone = &site.zones[zi];
        let mut t = zone_target(zi, 0, zone, fire_from);
        if let Some(l) = fixed {
            t.levels = l;
        }
        if let Some(r) = rc.clear_ratio {
            t.levels.clear_ratio = r;
        }
        match &metric {
            Some(Metric::Occupancy) if t.capacity.is_none_or(|c| c <= 0.0) => p.push(
                format!("{path}.zones"),
                format!("zone {:?} has no capacity for an occupancy rule", zone.config.id),
            ),
            Some(Metric::Silent { expected_every_s, .. }) => t.levels = limit(*expected_every_s as f64),
            Some(Metric::Disagree { factor, .. }) => t.levels = limit(*factor),
            _ => {}
        }
        targets.push(t);
    }
    let audience =
        rc.audience.unwrap_or(if is(&[Silent, Disagree]) { Audience::Engineer } else { Audience::GridWorker });
    let rule = Rule { id: rc.id.clone(), metric: metric?, audience, timing, schedule, mute };
    (p.items().len() == before).then_some((rule, targets))
}

fn metric_str(m: MetricName) -> &'static str {
    match m {
        MetricName::Density => "density",
        MetricName::Occupancy => "occupancy",
        MetricName::Inflow => "inflow",
        MetricName::Conflict => "conflict",
        MetricName::Predictive => "predictive",
        MetricName::Silent => "silent",
        MetricName::Disagree => "disagree",
    }
}

/// Levels shown for a yes/no rule: its limit as `warning`.
fn limit(v: f64) -> Levels {
    Levels { thresholds: [None, Some(v), None], clear_ratio: 1.0, fire_from: Level::Warning }
}

fn metric(path: &str, rc: &RuleConfig, p: &mut Problems) -> Option<Metric> {
    let mut positive = |key: &str, v: Option<i64>| -> Option<i64> {
        match v {
            Some(v) if v > 0 && v <= crowdgrid_proto::config::MAX_SECONDS => Some(v),
            Some(_) => {
                p.push(
                    format!("{path}.{key}"),
                    format!("must be from 1 to {} s", crowdgrid_proto::config::MAX_SECONDS),
                );
                None
            }
            None => {
                p.push(format!("{path}.{key}"), format!("is needed by metric = {:?}", metric_str(rc.metric)));
                None
            }
        }
    };
    Some(match rc.metric {
        MetricName::Density => Metric::Density,
        MetricName::Occupancy => Metric::Occupancy,
        MetricName::Inflow => Metric::Inflow,
        MetricName::Conflict => Metric::Conflict,
        MetricName::Predictive => {
            let horizon_s = positive("horizon_s", rc.horizon_s);
            let window_s = positive("window_s", Some(rc.window_s.unwrap_or(600)));
            let min_points = rc.min_points.unwrap_or(5);
            if min_points < 2 {
                p.push(format!("{path}.min_points"), "must be at least 2");
            }
            Metric::Predictive { horizon_s: horizon_s?, window_s: window_s?, min_points }
        }
        MetricName::Silent => Metric::Silent {
            expected_every_s: positive("expected_every_s", rc.expected_every_s)?,
            source_kinds: rc.source_kinds.clone().unwrap_or_default(),
        },
        MetricName::Disagree => {
            let max_age_s = positive("max_age_s", Some(rc.max_age_s.unwrap_or(300)));
            let factor = rc.factor.filter(|f| f.is_finite() && *f > 1.0);
            if factor.is_none() {
                p.push(format!("{path}.factor"), "a disagree rule needs a factor > 1");
            }
            let min_density = rc.min_density.unwrap_or(0.2);
            if !(min_density.is_finite() && min_density > 0.0) {
                p.push(format!("{path}.min_density"), "must be positive");
            }
            Metric::Disagree { factor: factor?, min_density, max_age_s: max_age_s? }
        }
    })
}

/// Levels written in the rule, checked; `None` when the zones' own thresholds apply (or on problems).
fn fixed_levels(path: &str, rc: &RuleConfig, fire_from: Level, p: &mut Problems) -> Option<Levels> {
    let key = format!("{path}.levels");
    let Some(l) = rc.levels else {
        if matches!(rc.metric, MetricName::Occupancy | MetricName::Inflow | MetricName::Conflict) {
            p.push(&key, format!("is needed by metric = {:?}", metric_str(rc.metric)));
        }
        return None;
    };
    let LevelsConfig { notice, warning, critical } = l;
    let set: Vec<(&str, f64)> = [("notice", notice), ("warning", warning), ("critical", critical)]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        .collect();
    let mut ok = true;
    for (n, v) in &set {
        if !(v.is_finite() && *v > 0.0) {
            p.push(format!("{key}.{n}"), format!("{v} must be positive"));
            ok = false;
        }
    }
    if set.windows(2).any(|w| w[0].1 >= w[1].1) {
        p.push(&key, "levels must rise: notice < warning < critical");
        ok = false;
    }
    if rc.metric == MetricName::Predictive && warning.is_none() {
        p.push(&key, "a predictive rule forecasts the warning level: give warning (or omit levels)");
        ok = false;
    }
    let levels = Levels { thresholds: [notice, warning, critical], clear_ratio: 0.8, fire_from };
    if rc.metric != MetricName::Predictive && levels.lowest_firing().is_none() {
        p.push(&key, format!("no level at or above fire_from ({})", fire_from.as_str()));
        ok = false;
    }
    ok.then_some(levels)
}

/// Indices of the zones the rule applies to.
fn select_zones(path: &str, rc: &RuleConfig, site: &Site, p: &mut Problems) -> Vec<usize> {
    match (&rc.zones, &rc.zone_kinds) {
        (Some(_), Some(_)) => {
            p.push(path, "give zones or zone_kinds, not both");
            Vec::new()
        }
        (Some(ids), None) => {
            if ids.is_empty() {
                p.push(format!("{path}.zones"), "must name at least one zone (omit it for every zone)");
            }
            let mut out = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                match site.zones.iter().position(|z| &z.config.id == id) {
                    Some(zi) if !out.contains(&zi) => out.push(zi),
                    Some(_) => p.push(format!("{path}.zones[{i}]"), format!("zone {id:?} is listed twice")),
                    None => p.push(
                        format!("{path}.zones[{i}]"),
                        format!("unknown zone {id:?} in site {:?}", site.config.id),
                    ),
                }
            }
            out
        }
        (None, Some(kinds)) => {
            for (i, k) in kinds.iter().enumerate() {
                if !site.zones.iter().any(|z| &z.config.kind == k) {
                    p.push(
                        format!("{path}.zone_kinds[{i}]"),
                        format!("no zone of kind {k:?} in site {:?}", site.config.id),
                    );
                }
            }
            (0..site.zones.len()).filter(|i| kinds.contains(&site.zones[*i].config.kind)).collect()
        }
        (None, None) => (0..site.zones.len()).collect(),
    }
}
