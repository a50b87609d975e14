//! What a backtest found: per rule set, the tickets it would have raised (times, level, how long open, flaps,
//! the predictive rule's lead time) and a summary per zone; per zone, time at each level of the map; per
//! candidate, its difference from the current set (tickets it adds, tickets it drops). Serialised as the JSON
//! of `crowdgrid backtest --json` and `POST /api/v1/backtest`; [`Report::text`] is the table.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;
use serde::Serialize;

use super::tickets::SimTicket;

/// Seconds a zone's map value spent at each level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ZoneTime {
    /// Below notice.
    pub normal_s: f64,
    /// Notice.
    pub notice_s: f64,
    /// Warning.
    pub warning_s: f64,
    /// Critical.
    pub critical_s: f64,
}

impl ZoneTime {
    /// Adds `d` at `level` (negative spans, from out-of-order data, are ignored).
    pub fn add(&mut self, level: Level, d: Duration) {
        let s = d.num_milliseconds().max(0) as f64 / 1000.0;
        match level {
            Level::Normal => self.normal_s += s,
            Level::Notice => self.notice_s += s,
            Level::Warning => self.warning_s += s,
            Level::Critical => self.critical_s += s,
        }
    }
}

/// A simulated ticket with what only hindsight knows.
#[derive(Debug, Clone, Serialize)]
pub struct TicketReport {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: SimTicket,
    /// Seconds it was open (to the end of the range if still open).
    pub open_s: f64,
    /// Predictive tickets: seconds from raising to the zone actually reaching warning (`None`: it did not, in
    /// the range — a false alarm or a prevented one).
    pub lead_s: Option<f64>,
}

/// One zone's tickets under one rule set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ZoneSummary {
    /// Tickets raised.
    pub tickets: usize,
    /// Seconds with a ticket open (summed over its rules).
    pub open_s: f64,
    /// Reopenings within the reopen window.
    pub flaps: u32,
}

/// One rule set's results.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    /// `current` or the candidate's name.
    pub name: String,
    /// Every ticket, in the order raised.
    pub tickets: Vec<TicketReport>,
    /// Per `site/zone`.
    pub zones: BTreeMap<String, ZoneSummary>,
}

impl SetReport {
    /// Summarises `tickets` up to `end`; `warned` holds when each zone's map level rose to warning.
    pub fn new(
        name: String,
        tickets: Vec<SimTicket>,
        end: DateTime<Utc>,
        warned: &HashMap<(String, String), Vec<DateTime<Utc>>>,
    ) -> Self {
        let mut zones: BTreeMap<String, ZoneSummary> = BTreeMap::new();
        let tickets: Vec<TicketReport> = tickets
            .into_iter()
            .map(|t| {
                let open_s = t.open_for(end).num_milliseconds() as f64 / 1000.0;
                let lead_s = (t.metric == "predictive")
                    .then(|| warned.get(&(t.site.clone(), t.zone.clone())))
                    .flatten()
                    .and_then(|times| times.iter().find(|w| **w >= t.opened))
                    .map(|w| (*w - t.opened).num_milliseconds() as f64 / 1000.0);
                let z = zones.entry(format!("{}/{}", t.site, t.zone)).or_default();
                z.tickets += 1;
                z.open_s += open_s;
                z.flaps += t.reopened;
                TicketReport { ticket: t, open_s, lead_s }
            })
            .collect();
        SetReport { name, tickets, zones }
    }
}

/// One candidate against the current set, per zone.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The candidate.
    pub candidate: String,
    /// Per `site/zone` with any difference.
    pub zones: BTreeMap<String, ZoneDiff>,
}

/// A zone's difference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZoneDiff {
    /// Candidate's tickets minus current's.
    pub tickets: i64,
    /// Candidate's open seconds minus current's.
    pub open_s: f64,
    /// Candidate tickets open when no current ticket of the zone was (what the change adds).
    pub added: Vec<TicketReport>,
    /// Current tickets open when no candidate ticket of the zone was (what the change drops).
    pub dropped: Vec<TicketReport>,
}

/// A whole backtest.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Readings replayed.
    pub readings: u64,
    /// First reading's time.
    pub from: Option<DateTime<Utc>>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// Per `site/zone`: time at each level of the map.
    pub levels: BTreeMap<String, ZoneTime>,
    /// The current set first, then each candidate.
    pub sets: Vec<SetReport>,
    /// Each candidate against the current set.
    pub diffs: Vec<Diff>,
}

impl Report {
    /// Assembles the report and the candidates' differences from the first set.
    pub fn new(
        readings: u64,
        span: Option<(DateTime<Utc>, DateTime<Utc>)>,
        end: DateTime<Utc>,
        sets: Vec<SetReport>,
        time: HashMap<(String, String), ZoneTime>,
    ) -> Report {
        let levels = time.into_iter().map(|((s, z), t)| (format!("{s}/{z}"), t)).collect();
        let diffs = match sets.split_first() {
            Some((current, candidates)) => candidates.iter().map(|c| diff(current, c, end)).collect(),
            None => Vec::new(),
        };
        Report { readings, from: span.map(|s| s.0), to: end, levels, sets, diffs }
    }

    /// The report as a text table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let from = self.from.map_or("-".to_string(), |f| f.to_rfc3339());
        let _ = writeln!(out, "backtest: {} readings, {from} → {}", self.readings, self.to.to_rfc3339());
        let _ = writeln!(
            out,
            "\n{:<28} {:>9} {:>9} {:>9} {:>9}   (time at each level of the map)",
            "zone", "normal", "notice", "warning", "critical"
        );
        for (zone, t) in &self.levels {
            let _ = writeln!(
                out,
                "{zone:<28} {:>9} {:>9} {:>9} {:>9}",
                dur(t.normal_s),
                dur(t.notice_s),
                dur(t.warning_s),
                dur(t.critical_s)
            );
        }
        for set in &self.sets {
            let _ = writeln!(out, "\nrule set {}: {} tickets", set.name, set.tickets.len());
            for t in &set.tickets {
                let lead = t.lead_s.map_or(String::new(), |l| format!("  lead {}", dur(l)));
                let _ = writeln!(
                    out,
                    "  {:<26} {:<22} {:<8} {} for {:>8}  peak {:.2} {}{}{}",
                    format!("{}/{}", t.ticket.site, t.ticket.zone),
                    t.ticket.rule,
                    t.ticket.level.as_str(),
                    t.ticket.opened.format("%Y-%m-%d %H:%M:%S"),
                    dur(t.open_s),
                    t.ticket.peak_value,
                    t.ticket.unit,
                    if t.ticket.reopened > 0 { format!("  flapped {}×", t.ticket.reopened) } else { String::new() },
                    lead
                );
            }
        }
        for d in &self.diffs {
            let _ = writeln!(out, "\n{} against current:", d.candidate);
            if d.zones.is_empty() {
                let _ = writeln!(out, "  no difference");
            }
            for (zone, z) in &d.zones {
                let sign = if z.open_s < 0.0 { "-" } else { "+" };
                let _ = writeln!(
                    out,
                    "  {zone:<26} tickets {:+}  open {sign}{}  adds {}  drops {}",
                    z.tickets,
                    dur(z.open_s.abs()),
                    z.added.len(),
                    z.dropped.len()
                );
            }
        }
        out
    }
}

fn dur(s: f64) -> String {
    let s = s.round() as i64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn diff(current: &SetReport, cand: &SetReport, end: DateTime<Utc>) -> Diff {
    let mut zones: BTreeMap<String, ZoneDiff> = BTreeMap::new();
    let keys: std::collections::BTreeSet<&String> = current.zones.keys().chain(cand.zones.keys()).collect();
    for key in keys {
        let of = |s: &SetReport| s.zones.get(key).copied().unwrap_or_default();
        let (a, b) = (of(current), of(cand));
        let in_zone = |s: &SetReport| -> Vec<TicketReport> {
            s.tickets.iter().filter(|t| format!("{}/{}", t.ticket.site, t.ticket.zone) == *key).cloned().collect()
        };
        let (ta, tb) = (in_zone(current), in_zone(cand));
        let alone = |xs: &[TicketReport], ys: &[TicketReport]| -> Vec<TicketReport> {
            xs.iter().filter(|x| !ys.iter().any(|y| x.ticket.overlaps(&y.ticket, end))).cloned().collect()
        };
        let z = ZoneDiff {
            tickets: b.tickets as i64 - a.tickets as i64,
            open_s: b.open_s - a.open_s,
            added: alone(&tb, &ta),
            dropped: alone(&ta, &tb),
        };
        if z.tickets != 0 || z.open_s.abs() > 0.5 || !z.added.is_empty() || !z.dropped.is_empty() {
            zones.insert(key.clone(), z);
        }
    }
    Diff { candidate: cand.name.clone(), zones }
}
