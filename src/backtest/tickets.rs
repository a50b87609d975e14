//! The tickets one rule set would have raised, kept by the dispatcher's rules: at most one open ticket per zone
//! and rule (a new fire while one is open upgrades it if higher), a ticket resolved less than the reopen window
//! ago is reopened instead of raising a new one, and a clear resolves it. Nothing is stored or notified.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;
use serde::Serialize;

use crate::rules::{RuleEvent, Transition};

/// One simulated ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimTicket {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Rule id.
    pub rule: String,
    /// The rule's metric.
    pub metric: &'static str,
    /// Unit of `value` and `peak_value`.
    pub unit: &'static str,
    /// Highest level reached.
    pub level: Level,
    /// Raised (data time).
    pub opened: DateTime<Utc>,
    /// Resolved automatically (data time); `None` if still open at the end of the range.
    pub closed: Option<DateTime<Utc>>,
    /// The value when raised or last upgraded.
    pub value: f64,
    /// The most urgent value while open.
    pub peak_value: f64,
    /// Times it was reopened within the reopen window (flapping).
    pub reopened: u32,
}

impl SimTicket {
    /// How long it was open, up to `end`.
    pub fn open_for(&self, end: DateTime<Utc>) -> Duration {
        self.closed.unwrap_or(end) - self.opened
    }

    /// Whether the two were open at a common moment (closed intervals: a ticket raised by the range's last
    /// reading is open for 0 s and still counts).
    pub fn overlaps(&self, other: &SimTicket, end: DateTime<Utc>) -> bool {
        self.opened <= other.closed.unwrap_or(end) && other.opened <= self.closed.unwrap_or(end)
    }
}

/// Every ticket of one rule set, in the order raised.
#[derive(Debug)]
pub struct Book {
    tickets: Vec<SimTicket>,
    /// (site, zone, rule) → index of its latest ticket.
    latest: HashMap<(String, String, String), usize>,
    reopen_window: Duration,
}

impl Book {
    /// An empty book.
    pub fn new(reopen_window: Duration) -> Self {
        Book { tickets: Vec::new(), latest: HashMap::new(), reopen_window }
    }

    /// What the dispatcher would do with `ev`.
    pub fn apply(&mut self, ev: &RuleEvent) {
        let key = (ev.site.clone(), ev.zone.clone(), ev.rule.clone());
        let latest = self.latest.get(&key).copied();
        let urgent = |a: f64, b: f64| if ev.lower_is_urgent { a.min(b) } else { a.max(b) };
        match ev.transition {
            Transition::Fire { level, value } | Transition::Upgrade { level, value } => {
                let fire = matches!(ev.transition, Transition::Fire { .. });
                match latest.map(|i| &mut self.tickets[i]) {
                    Some(t) if t.closed.is_none() && level > t.level => {
                        t.level = level;
                        t.value = value;
                        t.peak_value = urgent(t.peak_value, value);
                    }
                    Some(t) if t.closed.is_none() => {}
                    Some(t) if fire && t.closed.is_some_and(|c| ev.ts - c <= self.reopen_window) => {
                        t.closed = None;
                        t.level = level;
                        t.value = value;
                        t.peak_value = value;
                        t.reopened += 1;
                    }
                    _ if fire => {
                        self.latest.insert(key, self.tickets.len());
                        self.tickets.push(SimTicket {
                            site: ev.site.clone(),
                            zone: ev.zone.clone(),
                            rule: ev.rule.clone(),
                            metric: ev.metric,
                            unit: ev.unit,
                            level,
                            opened: ev.ts,
                            closed: None,
                            value,
                            peak_value: value,
                            reopened: 0,
                        });
                    }
                    _ => {}
                }
            }
            Transition::Clear { .. } => {
                if let Some(t) = latest.map(|i| &mut self.tickets[i]).filter(|t| t.closed.is_none()) {
                    t.closed = Some(ev.ts);
                }
            }
        }
    }

    /// The tickets, in the order raised.
    pub fn into_tickets(self) -> Vec<SimTicket> {
        self.tickets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Audience;

    fn ev(ts: i64, transition: Transition) -> RuleEvent {
        RuleEvent {
            site: "s".into(),
            zone: "z".into(),
            rule: "r".into(),
            audience: Audience::GridWorker,
            ts: DateTime::from_timestamp(ts, 0).unwrap(),
            transition,
            detail: String::new(),
            metric: "density",
            unit: "people/m²",
            lower_is_urgent: false,
            density: 0.0,
        }
    }

    #[test]
    fn one_open_ticket_upgrades_reopens_within_the_window_and_clears() {
        let mut b = Book::new(Duration::seconds(600));
        b.apply(&ev(0, Transition::Fire { level: Level::Warning, value: 3.7 }));
        b.apply(&ev(10, Transition::Fire { level: Level::Warning, value: 3.9 }));
        b.apply(&ev(20, Transition::Upgrade { level: Level::Critical, value: 5.1 }));
        b.apply(&ev(100, Transition::Clear { value: 2.0 }));
        // 5 minutes later: reopened, not new (a flap).
        b.apply(&ev(400, Transition::Fire { level: Level::Warning, value: 3.8 }));
        b.apply(&ev(500, Transition::Clear { value: 2.0 }));
        // 20 minutes later: a new ticket.
        b.apply(&ev(1700, Transition::Fire { level: Level::Warning, value: 3.6 }));
        let t = b.into_tickets();
        assert_eq!(t.len(), 2, "{t:#?}");
        assert_eq!((t[0].level, t[0].reopened, t[0].closed.map(|c| c.timestamp())), (Level::Warning, 1, Some(500)));
        assert_eq!(t[0].opened.timestamp(), 0);
        assert_eq!((t[1].opened.timestamp(), t[1].closed), (1700, None));
    }
}
