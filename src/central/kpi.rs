//! Governance KPIs from tickets and their trails (pure): tier shares against the 70 / 80 / 95 %
//! targets, response times, and the two-way assessment per worker and per department.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::tickets::{Ticket, TicketEvent, Tier};

/// Distribution of a duration in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stat {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Stat {
            count: v.len(),
            p50: Some(q(0.5)),
            p90: Some(q(0.9)),
            mean: Some(v.iter().sum::<f64>() / v.len() as f64),
        }
    }
}

/// Shares of resolved crowd tickets closed at or below each tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tiers {
    /// Resolved in the grid.
    pub grid: Option<f64>,
    /// Resolved in the grid or the community.
    pub community: Option<f64>,
    /// Resolved at sub-district level or below.
    pub subdistrict: Option<f64>,
}

/// One worker's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerKpi {
    /// Worker id.
    pub worker: String,
    /// Tickets assigned.
    pub assigned: usize,
    /// Of which acknowledged.
    pub acknowledged: usize,
    /// Resolved by this worker.
    pub resolved: usize,
    /// Whistles blown by this worker.
    pub escalated: usize,
    /// Resolved with a feedback note.
    pub with_note: usize,
    /// Mean time to acknowledge.
    pub mean_ack_s: Option<f64>,
}

/// One department's figures (the sub-district's responsible department, summoned by the whistle).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DepartmentKpi {
    /// `{subdistrict}` the department serves.
    pub department: String,
    /// Tickets that reached it.
    pub whistles: usize,
    /// Of which resolved.
    pub resolved: usize,
    /// Mean time from the whistle to resolution.
    pub mean_resolve_s: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// Crowd tickets in the period.
    pub tickets: usize,
    /// Of which resolved.
    pub resolved: usize,
    /// Data-quality tickets for engineers.
    pub data_quality: usize,
    /// Tier shares.
    pub tiers: Tiers,
    /// The seed's targets.
    pub targets: BTreeMap<&'static str, f64>,
    /// Raise → first acknowledgement.
    pub time_to_ack_s: Stat,
    /// Raise → worker on site.
    pub time_on_site_s: Stat,
    /// Raise → density back under the clear level.
    pub time_to_relief_s: Stat,
    /// Per worker.
    pub workers: Vec<WorkerKpi>,
    /// Per department.
    pub departments: Vec<DepartmentKpi>,
}

fn secs(a: chrono::DateTime<chrono::Utc>, b: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    b.map(|b| (b - a).num_milliseconds() as f64 / 1000.0)
}

/// Computes the KPIs of `history`.
pub fn compute(history: &[(Ticket, Vec<TicketEvent>)]) -> Kpis {
    let crowd: Vec<_> = history.iter().filter(|(t, _)| t.kind == "crowd").collect();
    let resolved: Vec<_> = crowd.iter().filter(|(t, _)| !t.is_open()).collect();
    let share = |max: Tier| {
        (!resolved.is_empty())
            .then(|| resolved.iter().filter(|(t, _)| t.tier() <= max).count() as f64 / resolved.len() as f64)
    };
    let mut workers: BTreeMap<String, (WorkerKpi, Vec<f64>)> = BTreeMap::new();
    let mut departments: BTreeMap<String, (DepartmentKpi, Vec<f64>)> = BTreeMap::new();
    for (t, events) in &crowd {
        if let Some(w) = &t.assignee {
            let (k, acks) = workers
                .entry(w.clone())
                .or_insert_with(|| (WorkerKpi { worker: w.clone(), ..Default::default() }, Vec::new()));
            k.assigned += 1;
            if let Some(s) = secs(t.opened_at, t.acknowledged_at) {
                k.acknowledged += 1;
                acks.push(s);
            }
        }
        for e in events.iter().filter(|e| e.kind == "escalated" && e.actor != "system") {
            let (k, _) = workers
                .entry(e.actor.clone())
                .or_insert_with(|| (WorkerKpi { worker: e.actor.clone(), ..Default::default() }, Vec::new()));
            k.escalated += 1;
        }
        if let Some(by) = t.resolved_by.as_ref().filter(|b| b.as_str() != "system") {
            let (k, _) = workers
                .entry(by.clone())
                .or_insert_with(|| (WorkerKpi { worker: by.clone(), ..Default::default() }, Vec::new()));
            k.resolved += 1;
            if t.resolution.as_ref().is_some_and(|n| !n.trim().is_empty()) {
                k.with_note += 1;
            }
        }
        if t.tier() == Tier::Department {
            let name = format!("{}/{}", t.site, t.subdistrict);
            let (d, times) = departments
                .entry(name.clone())
                .or_insert_with(|| (DepartmentKpi { department: name, ..Default::default() }, Vec::new()));
            d.whistles += 1;
            let whistle =
                events.iter().rev().find(|e| e.kind == "escalated" && e.detail.contains("-> department")).map(|e| e.ts);
            if let (Some(w), Some(c)) = (whistle, t.closed_at) {
                d.resolved += 1;
                times.push((c - w).num_milliseconds() as f64 / 1000.0);
            }
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Kpis {
        tickets: crowd.len(),
        resolved: resolved.len(),
        data_quality: history.len() - crowd.len(),
        tiers: Tiers {
            grid: share(Tier::Grid),
            community: share(Tier::Community),
            subdistrict: share(Tier::Subdistrict),
        },
        targets: BTreeMap::from([("grid", 0.70), ("community", 0.80), ("subdistrict", 0.95)]),
        time_to_ack_s: Stat::of(crowd.iter().filter_map(|(t, _)| secs(t.opened_at, t.acknowledged_at)).collect()),
        time_on_site_s: Stat::of(crowd.iter().filter_map(|(t, _)| secs(t.opened_at, t.on_site_at)).collect()),
        time_to_relief_s: Stat::of(crowd.iter().filter_map(|(t, _)| secs(t.opened_at, t.relief_at)).collect()),
        workers: workers
            .into_values()
            .map(|(mut k, acks)| {
                k.mean_ack_s = mean(&acks);
                k
            })
            .collect(),
        departments: departments
            .into_values()
            .map(|(mut d, times)| {
                d.mean_resolve_s = mean(&times);
                d
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
