//! The per (zone, rule) state machine: a value must stay at/above a level for `for` before it fires, a firing
//! rule clears only after staying below `clear_ratio` × the lowest firing threshold for `clear_for`, and no new
//! ticket opens during the cooldown after a clear. One active alert: repeats yield nothing, a higher level
//! yields an upgrade. Pure: every call takes its time explicitly.

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;
use serde::{Deserialize, Serialize};

use super::Transition;

/// The firing levels (notice, warning, critical) of one rule in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Levels {
    /// Thresholds for notice, warning, critical; `None` when the rule has no such level.
    pub thresholds: [Option<f64>; 3],
    /// A level clears only below `clear_ratio` × its threshold.
    pub clear_ratio: f64,
    /// The lowest level that opens a ticket.
    pub fire_from: Level,
}

/// Index of a non-normal level in [`Levels::thresholds`].
fn idx(l: Level) -> Option<usize> {
    match l {
        Level::Normal => None,
        Level::Notice => Some(0),
        Level::Warning => Some(1),
        Level::Critical => Some(2),
    }
}

/// The level at index `i` of [`Levels::thresholds`].
pub const LEVELS: [Level; 3] = [Level::Notice, Level::Warning, Level::Critical];

impl Levels {
    /// The threshold of `l`, if configured.
    pub fn threshold(&self, l: Level) -> Option<f64> {
        idx(l).and_then(|i| self.thresholds[i])
    }

    /// The lowest configured level that fires, and its threshold.
    pub fn lowest_firing(&self) -> Option<(Level, f64)> {
        LEVELS.iter().zip(self.thresholds).find_map(|(l, t)| Some((*l, t?)).filter(|(l, _)| *l >= self.fire_from))
    }

    /// The machine input for `value`, with `prev` the previous display level (for hysteresis).
    pub fn input(&self, value: f64, prev: Level) -> Input {
        let mut above = [false; 3];
        let mut raw = Level::Normal;
        for (i, t) in self.thresholds.iter().enumerate() {
            if t.is_some_and(|t| value >= t) {
                raw = LEVELS[i];
                above[i] = LEVELS[i] >= self.fire_from;
            }
        }
        // The display level steps down only through levels whose clear threshold the value is below.
        let mut level = prev.max(raw);
        while level > raw && self.threshold(level).is_none_or(|t| value < t * self.clear_ratio) {
            level = LEVELS
                .iter()
                .rev()
                .copied()
                .find(|l| *l < level && self.threshold(*l).is_some())
                .unwrap_or(Level::Normal);
        }
        let below_clear = self.lowest_firing().is_none_or(|(_, t)| value < t * self.clear_ratio);
        Input { value, above, below_clear, level }
    }
}

/// One evaluation of a rule, ready for [`MachineState::step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    /// The rule's value.
    pub value: f64,
    /// Per firing level: the value is at/above its threshold.
    pub above: [bool; 3],
    /// The value is below the clear threshold of the lowest firing level.
    pub below_clear: bool,
    /// The level shown in the rule view (with hysteresis).
    pub level: Level,
}

impl Input {
    /// A yes/no condition (predictive, silent, disagree) that fires at `level` while `on`.
    pub fn condition(value: f64, level: Level, on: bool) -> Input {
        let mut above = [false; 3];
        if let Some(i) = idx(level) {
            above[i] = on;
        }
        Input { value, above, below_clear: !on, level: if on { level } else { Level::Normal } }
    }
}

/// Durations of a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Time at/above a level before it fires.
    pub for_: Duration,
    /// Time below the clear threshold before it clears.
    pub clear_for: Duration,
    /// No new fire this long after a clear or manual close.
    pub cooldown: Duration,
}

/// Whether the rule may act right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Inside the schedule window.
    pub active: bool,
    /// Inside a mute window (no fire or upgrade).
    pub muted: bool,
}

/// The state of one rule in one zone; serialisable so it survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineState {
    /// Current level of the value (with hysteresis), for display.
    pub level: Level,
    /// Per level (notice, warning, critical): since when the value has been at/above it without a break.
    pub above_since: [Option<DateTime<Utc>>; 3],
    /// Level of the active alert.
    pub alert: Option<Level>,
    /// When the active alert fired.
    pub firing_since: Option<DateTime<Utc>>,
    /// While an alert is active: since when the value has been below the clear threshold.
    pub below_since: Option<DateTime<Utc>>,
    /// No new fire before this.
    pub cooldown_until: Option<DateTime<Utc>>,
    /// When the rule last fired here.
    pub last_fired: Option<DateTime<Utc>>,
    /// The last value evaluated.
    pub last_value: Option<f64>,
}

impl Default for MachineState {
    fn default() -> Self {
        Self {
            level: Level::Normal,
            above_since: [None; 3],
            alert: None,
            firing_since: None,
            below_since: None,
            cooldown_until: None,
            last_fired: None,
            last_value: None,
        }
    }
}

impl MachineState {
    /// Feeds one evaluation at `ts`.
    pub fn step(&mut self, ts: DateTime<Utc>, input: Input, gate: Gate, t: &Timing) -> Option<Transition> {
        self.last_value = Some(input.value);
        self.level = input.level;
        if !gate.active {
            return self.close_window(ts);
        }
        for (since, above) in self.above_since.iter_mut().zip(input.above) {
            *since = if above { Some(since.unwrap_or(ts)) } else { None };
        }
        let due = |s: &Option<DateTime<Utc>>| s.is_some_and(|s| ts - s >= t.for_);
        let qualified = (0..3).rev().find(|i| due(&self.above_since[*i])).map(|i| LEVELS[i]);
        let value = input.value;
        match self.alert {
            None => {
                let level = qualified?;
                if gate.muted || self.cooldown_until.is_some_and(|c| ts < c) {
                    return None;
                }
                self.alert = Some(level);
                self.firing_since = Some(ts);
                self.last_fired = Some(ts);
                self.below_since = None;
                Some(Transition::Fire { level, value })
            }
            Some(_) if input.below_clear => {
                let since = *self.below_since.get_or_insert(ts);
                (ts - since >= t.clear_for).then(|| self.clear(ts, t.cooldown, value))
            }
            Some(alert) => {
                self.below_since = None;
                let level = qualified.filter(|l| *l > alert && !gate.muted)?;
                self.alert = Some(level);
                Some(Transition::Upgrade { level, value })
            }
        }
    }

    /// Wall-clock check: an alert whose clear timer ran out without new readings clears.
    pub fn tick_clear(&mut self, now: DateTime<Utc>, t: &Timing) -> Option<Transition> {
        let since = self.below_since.filter(|_| self.alert.is_some())?;
        (now - since >= t.clear_for).then(|| self.clear(now, t.cooldown, self.last_value.unwrap_or(0.0)))
    }

    /// The schedule window is closed: pending timers reset and an active alert clears.
    pub fn close_window(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        self.above_since = [None; 3];
        self.level = Level::Normal;
        self.alert?;
        // A window closing is not a crowd clearing: no cooldown, the next window starts afresh.
        Some(self.clear(now, Duration::zero(), self.last_value.unwrap_or(0.0)))
    }

    /// A worker resolved the ticket by hand: the alert ends, the cooldown starts and `for` counts afresh.
    pub fn mark_closed(&mut self, at: DateTime<Utc>, cooldown: Duration) {
        self.alert = None;
        self.firing_since = None;
        self.below_since = None;
        self.above_since = [None; 3];
        self.cooldown_until = Some(at + cooldown);
    }

    /// Since when the value has been pending towards a level above the active alert (or any firing level).
    pub fn pending_since(&self) -> Option<DateTime<Utc>> {
        let floor = self.alert.and_then(idx).map_or(0, |i| i + 1);
        self.above_since[floor.min(3)..].iter().flatten().min().copied()
    }

    fn clear(&mut self, at: DateTime<Utc>, cooldown: Duration, value: f64) -> Transition {
        self.alert = None;
        self.firing_since = None;
        self.below_since = None;
        self.cooldown_until = Some(at + cooldown);
        Transition::Clear { value }
    }
}
