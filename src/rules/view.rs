//! What `GET /api/v1/rules` shows, and the [`Snapshot`] that carries rule state across a restart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use serde::{Deserialize, Serialize};

use super::engine::Engine;
use super::machine::{MachineState, LEVELS};
use super::{Audience, SourceValue};

/// One rule in one zone, with its live state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Rule id.
    pub rule: String,
    /// `density`, `occupancy`, `inflow`, `conflict`, `predictive`, `silent` or `disagree`.
    pub metric: &'static str,
    /// The unit of its value (`people/m²`, `people/min`, `s to warning`, ...).
    pub unit: &'static str,
    /// A smaller value is the more urgent one.
    #[serde(skip)]
    pub lower_is_urgent: bool,
    /// The zone's latest density, people/m².
    #[serde(skip)]
    pub density: f64,
    /// Who gets the ticket.
    pub audience: Audience,
    /// Level thresholds by name (silent: expected seconds, disagree: factor, predictive: warning density).
    pub levels: BTreeMap<&'static str, f64>,
    /// Seconds at/above a level before it fires.
    pub for_s: i64,
    /// Seconds below the clear threshold before it clears.
    pub clear_for_s: i64,
    /// Seconds without a new ticket after a clear.
    pub cooldown_s: i64,
    /// Inside its schedule window now (always true without a schedule).
    pub active_now: bool,
    /// Live state.
    pub state: StateView,
}

/// The live part of a [`RuleView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateView {
    /// Current level of the value (with hysteresis).
    pub level: Level,
    /// Level of the active alert, if any.
    pub alert: Option<Level>,
    /// Since when a level above the active alert has been pending its `for`.
    pub pending_since: Option<DateTime<Utc>>,
    /// When the active alert fired.
    pub firing_since: Option<DateTime<Utc>>,
    /// When this rule last fired here.
    pub last_fired: Option<DateTime<Utc>>,
    /// The last value evaluated.
    pub last_value: Option<f64>,
    /// No new ticket before this.
    pub cooldown_until: Option<DateTime<Utc>>,
}

/// The engine's state as JSON: timers, active alerts, cooldowns, last firing and the sources last heard.
/// Trend buffers are not kept (the predictive rule refills its window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// Every (zone, rule) whose state is not the initial one.
    pub states: Vec<SavedState>,
    /// Sources last heard, per zone (for silent rules).
    pub sources: Vec<SavedSources>,
}

impl Snapshot {
    /// Every site's part, in one pass (a site with nothing saved has no entry).
    pub fn by_site(self) -> std::collections::HashMap<String, Snapshot> {
        let mut out: std::collections::HashMap<String, Snapshot> = std::collections::HashMap::new();
        let version = self.version;
        let empty = || Snapshot { version, ..Snapshot::default() };
        for s in self.states {
            out.entry(s.site.clone()).or_insert_with(empty).states.push(s);
        }
        for s in self.sources {
            out.entry(s.site.clone()).or_insert_with(empty).sources.push(s);
        }
        out
    }

    /// Only `site`'s part.
    pub fn of(&self, site: &str) -> Snapshot {
        Snapshot {
            version: self.version,
            states: self.states.iter().filter(|s| s.site == site).cloned().collect(),
            sources: self.sources.iter().filter(|s| s.site == site).cloned().collect(),
        }
    }
}

/// One saved state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Rule id.
    pub rule: String,
    /// The state.
    pub state: MachineState,
}

/// The sources last heard in one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSources {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Latest value per source.
    pub heard: Vec<SourceValue>,
}

impl Engine {
    /// The rules in force, per zone, for one site or all; `active_now` is evaluated at the current time.
    pub fn views(&self, site: Option<&str>) -> Vec<RuleView> {
        self.views_at(site, Utc::now())
    }

    /// [`Engine::views`] with an explicit time.
    pub fn views_at(&self, site: Option<&str>, now: DateTime<Utc>) -> Vec<RuleView> {
        let mut out = Vec::new();
        for z in &self.zones {
            let s = &self.sites[z.site];
            if site.is_some_and(|id| id != s.site.config.id) {
                continue;
            }
            for sl in &z.slots {
                let t = &s.targets[sl.target];
                let r = &s.rules[t.rule];
                let levels =
                    LEVELS.iter().zip(t.levels.thresholds).filter_map(|(l, v)| Some((l.as_str(), v?))).collect();
                let st = &sl.state;
                out.push(RuleView {
                    site: s.site.config.id.clone(),
                    zone: s.site.zones[z.zone].config.id.clone(),
                    rule: r.id.clone(),
                    metric: r.metric.name(),
                    unit: r.metric.unit(),
                    lower_is_urgent: r.metric.lower_is_urgent(),
                    density: z.density,
                    audience: r.audience,
                    levels,
                    for_s: r.timing.for_.num_seconds(),
                    clear_for_s: r.timing.clear_for.num_seconds(),
                    cooldown_s: r.timing.cooldown.num_seconds(),
                    active_now: r
                        .schedule
                        .as_ref()
                        .is_none_or(|sc| sc.active(now, s.site.config.utc_offset_minutes, &s.calendar)),
                    state: StateView {
                        level: st.level,
                        alert: st.alert,
                        pending_since: st.pending_since(),
                        firing_since: st.firing_since,
                        last_fired: st.last_fired,
                        last_value: st.last_value,
                        cooldown_until: st.cooldown_until,
                    },
                });
            }
        }
        out
    }

    /// The state worth keeping across a restart.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot { version: 1, ..Snapshot::default() };
        let initial = MachineState::default();
        for z in &self.zones {
            let s = &self.sites[z.site];
            let (site, zone) = (&s.site.config.id, &s.site.zones[z.zone].config.id);
            for sl in z.slots.iter().filter(|sl| sl.state != initial) {
                let rule = s.rules[s.targets[sl.target].rule].id.clone();
                snap.states.push(SavedState { site: site.clone(), zone: zone.clone(), rule, state: sl.state.clone() });
            }
            if !z.heard.is_empty() {
                snap.sources.push(SavedSources { site: site.clone(), zone: zone.clone(), heard: z.heard.clone() });
            }
        }
        snap
    }

    /// Forgets everything about `site`'s zones (timers, alerts, sources heard, trends): a cluster instance that
    /// takes the site over starts from the last owner's snapshot, not from what it knew when it owned it before.
    pub fn reset_site(&mut self, site: &str) {
        let Some((si, _)) = self.index.get(site) else { return };
        let si = *si;
        for z in self.zones.iter_mut().filter(|z| z.site == si) {
            for sl in &mut z.slots {
                sl.state = MachineState::default();
            }
            z.heard.clear();
            z.density = 0.0;
            if let Some((trend, _)) = &mut z.trend {
                *trend = Default::default();
            }
        }
    }

    /// Swaps in `rules` without losing what is going on: a (zone, rule) whose rule and levels are unchanged keeps
    /// its whole state (pending `for` and clear timers, cooldown, alert); a changed one keeps only its active
    /// alert (so its open ticket is cleared by the new rule, not orphaned) and starts its timers afresh; a new one
    /// starts fresh. Sources heard, the zones' latest density and the predictive trends are kept.
    pub fn replace_rules(&mut self, rules: super::RuleSet) {
        let mut next = Engine::new(rules);
        for z in &self.zones {
            let s = &self.sites[z.site];
            let (site, zone) = (&s.site.config.id, &s.site.zones[z.zone].config.id);
            let Some(zi) = next.find(site, zone) else { continue };
            let nz = &mut next.zones[zi];
            nz.heard = z.heard.clone();
            nz.density = z.density;
            if let (Some(old), Some(new)) = (&z.trend, &mut nz.trend) {
                new.0 = old.0.clone();
            }
            let ns = &next.sites[nz.site];
            for sl in &z.slots {
                let (t, r) = (&s.targets[sl.target], &s.rules[s.targets[sl.target].rule]);
                let Some(nsl) = nz.slots.iter_mut().find(|n| ns.rules[ns.targets[n.target].rule].id == r.id) else {
                    continue;
                };
                let (nt, nr) = (&ns.targets[nsl.target], &ns.rules[ns.targets[nsl.target].rule]);
                if nr == r && nt.levels == t.levels {
                    nsl.state = sl.state.clone();
                } else if let Some(level) = sl.state.alert {
                    nsl.state.alert = Some(level);
                    nsl.state.firing_since = sl.state.firing_since;
                    nsl.state.last_fired = sl.state.last_fired;
                }
            }
        }
        *self = next;
    }

    /// Puts saved state back; entries for rules or zones that no longer exist are dropped.
    pub fn restore(&mut self, snap: Snapshot) {
        for saved in snap.states {
            if let Some((sl, _)) = self.slot_mut(&saved.site, &saved.zone, &saved.rule) {
                sl.state = saved.state;
            }
        }
        for saved in snap.sources {
            if let Some(zi) = self.find(&saved.site, &saved.zone) {
                self.zones[zi].heard = saved.heard;
            }
        }
    }
}
