//! Turns rule events into tickets and notifications, and runs the SLA clock. Runs as its own task so
//! a slow database or broker never stalls ingest.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::site::Site;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::EscalationConfig;
use super::escalation;
use super::notify::Notifier;
use crate::metrics::Metrics;
use crate::rules::{Audience, RuleEvent, Transition};
use crate::store::tickets::Measure;
use crate::store::tickets::{NewTicket, Raised, Ticket, TicketStore};
use crate::store::StoreError;

/// Everything the dispatcher needs.
pub struct Dispatcher {
    /// Sites.
    pub sites: Vec<Arc<Site>>,
    /// Ticket store.
    pub tickets: TicketStore,
    /// Notification fan-out.
    pub notifier: Notifier,
    /// SLAs.
    pub escalation: EscalationConfig,
    /// Metrics.
    pub metrics: Metrics,
}

impl Dispatcher {
    /// Handles rule events until the channel closes.
    pub async fn run(self, mut rx: mpsc::Receiver<RuleEvent>) {
        while let Some(ev) = rx.recv().await {
            self.handle(ev).await;
        }
        tracing::debug!("dispatcher drained");
    }

    /// Applies one event, retrying store failures (a lost event would be a lost ticket: the rule
    /// engine already counts it as firing).
    async fn handle(&self, ev: RuleEvent) {
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=10 {
            match self.apply(&ev).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, attempt, site = %ev.site, zone = %ev.zone, rule = %ev.rule, "ticket store failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.metrics.notify_errors.inc();
        tracing::error!(site = %ev.site, zone = %ev.zone, rule = %ev.rule, transition = ?ev.transition, "rule event abandoned after 10 attempts");
    }

    async fn apply(&self, ev: &RuleEvent) -> Result<(), StoreError> {
        let Some(site) = self.sites.iter().find(|s| s.config.id == ev.site) else { return Ok(()) };
        let Some(zone) = site.zone(&ev.zone) else { return Ok(()) };
        match ev.transition {
            Transition::Fire { level, value } => {
                let grid = zone.config.grid.clone();
                let community = site.grid(&grid).map(|g| g.community.clone()).unwrap_or_default();
                let subdistrict = site.community(&community).map(|c| c.subdistrict.clone()).unwrap_or_default();
                let (kind, audience, candidates, ack_due, resolve_due) = match ev.audience {
                    Audience::GridWorker => {
                        let (ack, resolve) = escalation::deadlines(&self.escalation, "grid_worker", level, ev.ts);
                        let workers = site.on_duty_workers_of_grid(&grid, ev.ts).map(|w| w.id.clone()).collect();
                        ("crowd", "grid_worker", workers, Some(ack), Some(resolve))
                    }
                    // Engineers' tickets have no worker; their own SLA (`[escalation] engineering`) climbs the same
                    // ladder when no engineer acknowledges or resolves them in time.
                    Audience::Engineer => {
                        let (ack, resolve) = escalation::deadlines(&self.escalation, "engineer", level, ev.ts);
                        ("data_quality", "engineer", Vec::new(), Some(ack), Some(resolve))
                    }
                };
                let t = NewTicket {
                    site: ev.site.clone(),
                    zone: ev.zone.clone(),
                    grid,
                    community,
                    subdistrict,
                    rule: ev.rule.clone(),
                    kind: kind.into(),
                    audience: audience.into(),
                    level,
                    measure: measure(ev, value),
                    ts: ev.ts,
                    candidates,
                    ack_due,
                    resolve_due,
                    reopen_window: chrono::Duration::seconds(self.escalation.reopen_window_s),
                };
                match self.tickets.raise(t).await? {
                    Raised::New(ticket) => {
                        self.metrics.tickets_opened.with_label_values(&[level.as_str()]).inc();
                        tracing::info!(ticket = ticket.id, site = %ev.site, zone = %ev.zone, rule = %ev.rule, level = level.as_str(), value, assignee = ?ticket.assignee, detail = %ev.detail, "ticket raised");
                        self.notifier.ticket("raised", &ticket).await;
                    }
                    Raised::Reopened(ticket) => {
                        tracing::info!(ticket = ticket.id, site = %ev.site, zone = %ev.zone, rule = %ev.rule, "ticket reopened");
                        self.notifier.ticket("reopened", &ticket).await;
                    }
                    Raised::Existing(ticket) if ticket.level() < level => {
                        if let Some(t) =
                            self.tickets.upgrade(&ev.site, &ev.zone, &ev.rule, level, measure(ev, value), ev.ts).await?
                        {
                            self.notifier.ticket("upgraded", &t).await;
                        }
                    }
                    Raised::Existing(_) => {}
                }
            }
            Transition::Upgrade { level, value } => {
                if let Some(t) =
                    self.tickets.upgrade(&ev.site, &ev.zone, &ev.rule, level, measure(ev, value), ev.ts).await?
                {
                    tracing::info!(ticket = t.id, level = level.as_str(), value, "ticket upgraded");
                    self.notifier.ticket("upgraded", &t).await;
                }
            }
            Transition::Clear { value } => {
                if let Some(t) = self.tickets.clear(&ev.site, &ev.zone, &ev.rule, value, ev.ts).await? {
                    self.metrics.tickets_resolved.with_label_values(&["auto"]).inc();
                    tracing::info!(ticket = t.id, site = %ev.site, zone = %ev.zone, rule = %ev.rule, value, "ticket auto-resolved");
                    self.notifier.ticket("resolved", &t).await;
                }
            }
        }
        Ok(())
    }
}

/// One pass of the SLA clock: moves every late ticket one tier up and returns the escalated ones. A
/// ticket is escalated only if it is still at the tier read, so several centre instances sharing a
/// PostgreSQL store escalate it once.
pub async fn escalate_late(
    tickets: &TicketStore,
    cfg: &EscalationConfig,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<Ticket>, StoreError> {
    let late = tickets.overdue(now).await?;
    let mut out = Vec::new();
    for t in late {
        let Some((reason, resolve_due)) = escalation::due(cfg, &t, now) else { continue };
        match tickets.escalate_from(t.id, t.tier(), "system", &reason, resolve_due).await {
            Ok(Some(up)) => {
                tracing::warn!(ticket = up.id, site = %up.site, zone = %up.zone, tier = %up.tier, reason, "ticket escalated");
                out.push(up);
            }
            Ok(None) => tracing::debug!(ticket = t.id, "already escalated or being escalated elsewhere"),
            Err(e) => tracing::error!(error = %e, ticket = t.id, "escalation failed"),
        }
    }
    Ok(out)
}

/// Moves late tickets up the ladder every `check_interval_ms` until `stop`.
pub async fn sla_clock(
    tickets: TicketStore,
    notifier: Notifier,
    cfg: EscalationConfig,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_millis(cfg.check_interval_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let escalated = match escalate_late(&tickets, &cfg, Utc::now()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "SLA clock cannot read tickets");
                continue;
            }
        };
        for up in escalated {
            metrics.escalations.with_label_values(&[up.tier.as_str()]).inc();
            notifier.ticket("escalated", &up).await;
        }
    }
}

/// The ticket's measure of a rule event carrying `value`.
fn measure(ev: &RuleEvent, value: f64) -> Measure {
    Measure { metric: ev.metric, unit: ev.unit, value, lower_is_urgent: ev.lower_is_urgent, density: ev.density }
}
