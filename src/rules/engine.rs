//! The engine: every rule's state machine for every zone, fed by observations (data time) and ticks
//! (wall-clock time). Synchronous and allocation-free on the quiet path.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;

use super::compile::{Metric, Rule, RuleSet, SiteRules, Target};
use super::machine::{Gate, Input, MachineState};
use super::predict::{describe_eta, eta_s, Trend};
use super::quality::{disagree, remember, silent};
use super::schedule::muted;
use super::{Observation, RuleEvent, SourceValue, Transition};

/// One rule bound to one zone, with its state.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    /// Index into the site's [`SiteRules::targets`].
    pub target: usize,
    /// The state machine.
    pub state: MachineState,
}

/// One zone with its rules.
#[derive(Debug, Clone)]
pub(super) struct ZoneSlot {
    /// Index into [`Engine::sites`].
    pub site: usize,
    /// Index into the site's zones.
    pub zone: usize,
    /// Its rules.
    pub slots: Vec<Slot>,
    /// Latest value per source (kept only when the zone has a silent rule).
    pub heard: Vec<SourceValue>,
    /// Recent density, for predictive rules: (trend, window).
    pub trend: Option<(Trend, Duration)>,
    /// The zone's latest density, for the tickets of transitions that happen between readings.
    pub density: f64,
    /// A rule of the zone reads the sources (silent, disagree).
    pub needs_sources: bool,
}

/// Evaluates the rules of every zone; see the module docs of [`super`].
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) sites: Vec<SiteRules>,
    /// Per site: zone id → index into `zones`.
    pub(super) index: HashMap<String, (usize, HashMap<String, usize>)>,
    pub(super) zones: Vec<ZoneSlot>,
}

impl Engine {
    /// An engine with no state for `rules`.
    pub fn new(rules: RuleSet) -> Engine {
        let mut index = HashMap::new();
        let mut zones = Vec::new();
        for (si, s) in rules.sites.iter().enumerate() {
            let mut by_id = HashMap::new();
            for (zi, z) in s.site.zones.iter().enumerate() {
                let targets: Vec<usize> = (0..s.targets.len()).filter(|t| s.targets[*t].zone == zi).collect();
                let window = targets
                    .iter()
                    .filter_map(|t| match s.rules[s.targets[*t].rule].metric {
                        Metric::Predictive { window_s, .. } => Some(window_s),
                        _ => None,
                    })
                    .max();
                let needs_sources = targets.iter().any(|t| {
                    matches!(s.rules[s.targets[*t].rule].metric, Metric::Silent { .. } | Metric::Disagree { .. })
                });
                let slots = targets.into_iter().map(|target| Slot { target, state: MachineState::default() }).collect();
                by_id.insert(z.config.id.clone(), zones.len());
                zones.push(ZoneSlot {
                    site: si,
                    zone: zi,
                    slots,
                    heard: Vec::new(),
                    trend: window.map(|w| (Trend::default(), Duration::seconds(w))),
                    density: 0.0,
                    needs_sources,
                });
            }
            index.insert(s.site.config.id.clone(), (si, by_id));
        }
        Engine { sites: rules.sites, index, zones }
    }

    /// The zone slot of `site`/`zone`.
    pub(super) fn find(&self, site: &str, zone: &str) -> Option<usize> {
        self.index.get(site).and_then(|(_, z)| z.get(zone)).copied()
    }

    /// Whether a rule of `site`/`zone` reads the zone's sources (so an observation must carry them).
    pub fn needs_sources(&self, site: &str, zone: &str) -> bool {
        self.find(site, zone).is_some_and(|i| self.zones[i].needs_sources)
    }

    /// Evaluates every rule of the observation's zone; unknown zones yield nothing.
    pub fn observe(&mut self, obs: &Observation) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        let Some(zi) = self.find(obs.site, obs.zone) else { return out };
        let z = &mut self.zones[zi];
        let s = &self.sites[z.site];
        if obs.density.is_finite() {
            z.density = obs.density;
        }
        if let Some((trend, window)) = &mut z.trend {
            trend.push(obs.ts, obs.density, *window);
        }
        let watches =
            z.slots.iter().any(|sl| matches!(s.rules[s.targets[sl.target].rule].metric, Metric::Silent { .. }));
        if watches {
            remember(&mut z.heard, obs.sources);
        }
        for sl in &mut z.slots {
            let target = &s.targets[sl.target];
            let rule = &s.rules[target.rule];
            let Some((input, why)) =
                evaluate(rule, target, obs, z.trend.as_ref().map(|t| &t.0), &z.heard, sl.state.level)
            else {
                continue;
            };
            let gate = Gate {
                active: rule
                    .schedule
                    .as_ref()
                    .is_none_or(|sc| sc.active(obs.ts, s.site.config.utc_offset_minutes, &s.calendar)),
                muted: muted(&rule.mute, obs.ts),
            };
            let was_alert = sl.state.alert.is_some();
            if let Some(tr) = sl.state.step(obs.ts, input, gate, &rule.timing) {
                let detail = match &tr {
                    Transition::Clear { .. } if was_alert && !gate.active => "schedule window closed".to_string(),
                    Transition::Clear { .. } => clear_detail(rule, target),
                    _ => why(),
                };
                out.push(event(s, target, rule, (obs.ts, z.density), tr, detail));
            }
        }
        out
    }

    /// Wall-clock timers at `now`: silent sources, schedule windows that closed, and clear timers that ran
    /// out without new readings. Call it every few seconds.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        for z in &mut self.zones {
            let s = &self.sites[z.site];
            for sl in &mut z.slots {
                let target = &s.targets[sl.target];
                let rule = &s.rules[target.rule];
                let open = rule
                    .schedule
                    .as_ref()
                    .is_none_or(|sc| sc.active(now, s.site.config.utc_offset_minutes, &s.calendar));
                if !open {
                    if let Some(tr) = sl.state.close_window(now) {
                        out.push(event(s, target, rule, (now, z.density), tr, "schedule window closed".to_string()));
                    }
                    continue;
                }
                if let Metric::Silent { expected_every_s, source_kinds } = &rule.metric {
                    let Some(c) = silent(&z.heard, source_kinds, Duration::seconds(*expected_every_s), now) else {
                        continue;
                    };
                    let gate = Gate { active: true, muted: muted(&rule.mute, now) };
                    let input = Input::condition(c.value, Level::Warning, c.on);
                    if let Some(tr) = sl.state.step(now, input, gate, &rule.timing) {
                        let detail = if c.on { c.detail } else { clear_detail(rule, target) };
                        out.push(event(s, target, rule, (now, z.density), tr, detail));
                    }
                } else if let Some(tr) = sl.state.tick_clear(now, &rule.timing) {
                    out.push(event(s, target, rule, (now, z.density), tr, clear_detail(rule, target)));
                }
            }
        }
        out
    }

    /// A worker resolved the ticket by hand: the alert is no longer active and the cooldown starts at `at`.
    pub fn mark_closed(&mut self, site: &str, zone: &str, rule: &str, at: DateTime<Utc>) {
        if let Some((sl, r)) = self.slot_mut(site, zone, rule) {
            sl.state.mark_closed(at, r);
        }
    }

    /// Marks an alert as active without firing (e.g. an open ticket found at start-up without a snapshot).
    pub fn resume_alert(&mut self, site: &str, zone: &str, rule: &str, level: Level, since: DateTime<Utc>) {
        if let Some((sl, _)) = self.slot_mut(site, zone, rule) {
            sl.state.alert = Some(level);
            sl.state.firing_since.get_or_insert(since);
            sl.state.last_fired.get_or_insert(since);
        }
    }

    /// Every active alert as (site, zone, rule, level).
    pub fn active_alerts(&self) -> Vec<(String, String, String, Level)> {
        let mut out = Vec::new();
        for z in &self.zones {
            let s = &self.sites[z.site];
            for sl in &z.slots {
                if let Some(level) = sl.state.alert {
                    let t = &s.targets[sl.target];
                    let zone = s.site.zones[z.zone].config.id.clone();
                    out.push((s.site.config.id.clone(), zone, s.rules[t.rule].id.clone(), level));
                }
            }
        }
        out
    }

    /// The slot of a rule in a zone, with the rule's cooldown.
    pub(super) fn slot_mut(&mut self, site: &str, zone: &str, rule: &str) -> Option<(&mut Slot, Duration)> {
        let zi = self.find(site, zone)?;
        let z = &mut self.zones[zi];
        let s = &self.sites[z.site];
        let sl = z.slots.iter_mut().find(|sl| s.rules[s.targets[sl.target].rule].id == rule)?;
        let cooldown = s.rules[s.targets[sl.target].rule].timing.cooldown;
        Some((sl, cooldown))
    }
}

/// A lazily built explanation (only formatted when something happens).
type Why<'a> = Box<dyn FnOnce() -> String + 'a>;

/// The rule's input for this observation, or `None` when the observation does not carry its metric.
fn evaluate<'a>(
    rule: &'a Rule,
    t: &'a Target,
    obs: &'a Observation,
    trend: Option<&Trend>,
    heard: &'a [SourceValue],
    prev: Level,
) -> Option<(Input, Why<'a>)> {
    let threshold_why = move |what: &'static str, v: f64, unit: &'static str, scale: f64| -> Why<'a> {
        Box::new(move || {
            let l = t.levels.input(v, Level::Normal).level;
            let th = t.levels.threshold(l).unwrap_or(0.0);
            format!("{what} {:.2}{unit} ≥ {} {:.2}{unit}", v * scale, l.as_str(), th * scale)
        })
    };
    Some(match &rule.metric {
        Metric::Density => (t.levels.input(obs.density, prev), threshold_why("density", obs.density, "/m²", 1.0)),
        Metric::Occupancy => {
            let v = obs.count / t.capacity?;
            (t.levels.input(v, prev), threshold_why("occupancy", v, "%", 100.0))
        }
        Metric::Inflow => {
            let v = obs.inflow_per_min?;
            (t.levels.input(v, prev), threshold_why("inflow", v, "/min", 1.0))
        }
        Metric::Conflict => {
            let v = obs.conflict?;
            (t.levels.input(v, prev), threshold_why("people–vehicle conflict", v, " people", 1.0))
        }
        Metric::Predictive { horizon_s, min_points, .. } => {
            let warning = t.levels.threshold(Level::Warning)?;
            let slope = trend?.slope_per_s(*min_points);
            if obs.density >= warning {
                // The density rule has taken over: neither fire nor count towards clearing.
                let input = Input { value: 0.0, above: [false; 3], below_clear: false, level: Level::Notice };
                return Some((input, Box::new(|| "warning level reached".to_string())));
            }
            let eta = slope.and_then(|s| eta_s(obs.density, warning, s));
            let on = eta.is_some_and(|e| e < *horizon_s as f64);
            let d = obs.density;
            let why: Why<'a> = Box::new(move || {
                let per_min = slope.unwrap_or(0.0) * 60.0;
                let eta = eta.map_or_else(|| "no trend".to_string(), describe_eta);
                format!("{eta} (density {d:.2}/m² rising {per_min:.2}/m² per min, warning {warning:.2}/m²)")
            });
            (Input::condition(eta.unwrap_or(-1.0), Level::Notice, on), why)
        }
        Metric::Silent { expected_every_s, source_kinds } => {
            let c = silent(heard, source_kinds, Duration::seconds(*expected_every_s), obs.ts)?;
            (Input::condition(c.value, Level::Warning, c.on), Box::new(move || c.detail))
        }
        Metric::Disagree { factor, min_density, max_age_s } => {
            match disagree(obs.sources, *factor, *min_density, Duration::seconds(*max_age_s), obs.ts) {
                Some(c) => (Input::condition(c.value, Level::Warning, c.on), Box::new(move || c.detail)),
                None => (Input::condition(0.0, Level::Warning, false), Box::new(String::new)),
            }
        }
    })
}

/// Why an alert cleared.
fn clear_detail(rule: &Rule, t: &Target) -> String {
    let secs = rule.timing.clear_for.num_seconds();
    match &rule.metric {
        Metric::Predictive { horizon_s, .. } => format!("warning no longer expected within {} min", horizon_s / 60),
        Metric::Silent { .. } => "every watched source heard again".to_string(),
        Metric::Disagree { .. } => format!("sources agree again for {secs} s"),
        _ => {
            let below = t.levels.lowest_firing().map_or(0.0, |(_, th)| th * t.levels.clear_ratio);
            format!("{} below {below:.2} for {secs} s", rule.metric.name())
        }
    }
}

fn event(
    s: &SiteRules,
    t: &Target,
    rule: &Rule,
    (ts, density): (DateTime<Utc>, f64),
    transition: Transition,
    detail: String,
) -> RuleEvent {
    RuleEvent {
        site: s.site.config.id.clone(),
        zone: s.site.zones[t.zone].config.id.clone(),
        rule: rule.id.clone(),
        audience: rule.audience,
        ts,
        transition,
        detail,
        metric: rule.metric.name(),
        unit: rule.metric.unit(),
        lower_is_urgent: rule.metric.lower_is_urgent(),
        density,
    }
}
