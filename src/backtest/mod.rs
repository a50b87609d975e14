//! Backtests: stored readings replayed through the centre's own fusion and rule engine ([`crate::central::judge`])
//! on a simulated clock, with the current rule set and any number of candidates side by side. Nothing is
//! notified and nothing is written: the tickets are simulated ([`tickets`]) with the dispatcher's rules (one open
//! ticket per zone and rule, upgrades, a reopen window), so a candidate's report says what operators and grid
//! workers would have got.
//!
//! Layout:
//! - [`tickets`]: the simulated ticket book of one rule set.
//! - [`report`]: what a run found (per rule set and zone), each candidate's difference from the current set, the
//!   text table.
//! - [`source`]: stored readings in data-time order (SQLite), or a CSV of timestamped counts.
//! - [`svg`]: one zone's backtest as an SVG chart.
//!
//! Clock: a reading's `ts` drives the engine's `observe` (as live); [`Engine::tick`] — silent sources, schedule
//! windows, clear timers without new readings — runs at every `tick` of data time (live: every wall-clock
//! second), so a backtest of data recorded live reproduces the live tickets (tests/backtest.rs).

pub mod report;
pub mod source;
pub mod svg;
pub mod tickets;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Level, Reading};

use crate::central::judge::judge;
use crate::central::live::Live;
use crate::rules::{Engine, RuleEvent, RuleSet};
use report::{Report, SetReport, ZoneTime};
use tickets::Book;

/// How a backtest runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a source's estimate stays in the fusion (`[rules] fused_fresh_s`).
    pub fused_fresh: Duration,
    /// A ticket resolved less than this long ago is reopened (`[escalation] reopen_window_s`).
    pub reopen_window: Duration,
    /// Data time between engine ticks (live: 1 s).
    pub tick: Duration,
}

/// A rule set under test.
pub struct Candidate {
    /// Its name in the report (`current`, or the file it came from).
    pub name: String,
    /// The compiled rules.
    pub rules: RuleSet,
}

struct SetRun {
    name: String,
    engine: Engine,
    book: Book,
}

/// One zone's map level over the run.
#[derive(Default)]
struct ZoneTrack {
    /// Its level and since when.
    level: Option<(Level, DateTime<Utc>)>,
    time: ZoneTime,
    /// When the level rose to warning or above (for the predictive rule's lead time).
    warned: Vec<DateTime<Utc>>,
}

/// A backtest in progress: feed it readings in data-time order, then [`Backtest::finish`].
pub struct Backtest {
    live: Live,
    sets: Vec<SetRun>,
    settings: Settings,
    next_tick: Option<DateTime<Utc>>,
    /// site → zone → what the map did there (looked up by `&str`: nothing cloned per reading).
    zones: HashMap<String, HashMap<String, ZoneTrack>>,
    readings: u64,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Backtest {
    /// A backtest of `sets` (the first is the reference the others are compared with) over `sites`.
    pub fn new(sites: &[Arc<Site>], sets: Vec<Candidate>, settings: Settings) -> Self {
        let sets = sets
            .into_iter()
            .map(|c| SetRun { name: c.name, engine: Engine::new(c.rules), book: Book::new(settings.reopen_window) })
            .collect();
        Backtest {
            live: Live::new(sites, settings.fused_fresh),
            sets,
            settings,
            next_tick: None,
            zones: HashMap::new(),
            readings: 0,
            span: None,
        }
    }

    /// Readings fed so far.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// One stored reading (in data-time order; an edge's own `fused` readings are ignored, as live).
    pub fn feed(&mut self, r: &Reading) {
        self.readings += 1;
        self.span = Some(self.span.map_or((r.ts, r.ts), |(a, b)| (a.min(r.ts), b.max(r.ts))));
        self.tick_until(r.ts);
        let mut engines: Vec<&mut Engine> = self.sets.iter_mut().map(|s| &mut s.engine).collect();
        let Some((changed, events)) = judge(&mut self.live, r, &mut engines) else { return };
        for (set, evs) in self.sets.iter_mut().zip(&events) {
            for ev in evs {
                set.book.apply(ev);
            }
        }
        let of_site = match self.zones.get_mut(changed.site.as_str()) {
            Some(z) => z,
            None => self.zones.entry(changed.site.clone()).or_default(),
        };
        let track = match of_site.get_mut(changed.zone.as_str()) {
            Some(t) => t,
            None => of_site.entry(changed.zone.clone()).or_default(),
        };
        let (prev, since) = track.level.unwrap_or((changed.level, changed.ts));
        track.time.add(prev, changed.ts - since);
        if changed.level >= Level::Warning && prev < Level::Warning {
            track.warned.push(changed.ts);
        }
        track.level = Some((changed.level, changed.ts));
    }

    /// Ticks every engine at each tick boundary up to `ts`.
    fn tick_until(&mut self, ts: DateTime<Utc>) {
        let step = self.settings.tick;
        let next = *self.next_tick.get_or_insert_with(|| ts.duration_trunc(step).unwrap_or(ts) + step);
        let mut at = next;
        while at <= ts {
            for set in &mut self.sets {
                let events: Vec<RuleEvent> = set.engine.tick(at);
                for ev in &events {
                    set.book.apply(ev);
                }
            }
            at += step;
        }
        self.next_tick = Some(at);
    }

    /// Runs the clock to `end` (the end of the range) and reports.
    pub fn finish(mut self, end: DateTime<Utc>) -> Report {
        self.tick_until(end);
        let mut time = HashMap::new();
        let mut warned = HashMap::new();
        for (site, zones) in self.zones {
            for (zone, mut t) in zones {
                if let Some((level, since)) = t.level {
                    t.time.add(level, end - since);
                }
                time.insert((site.clone(), zone.clone()), t.time);
                warned.insert((site.clone(), zone), t.warned);
            }
        }
        let sets = self.sets.into_iter().map(|s| SetReport::new(s.name, s.book.into_tickets(), end, &warned)).collect();
        Report::new(self.readings, self.span, end, sets, time)
    }
}
