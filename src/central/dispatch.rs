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
use super::ticket_service::TicketService;
use crate::metrics::Metrics;
use crate::rules::{Audience, RuleEvent, Transition};
use crate::store::tickets::{Measure, NewTicket, Raised};
use crate::store::StoreError;

/// Everything the dispatcher needs.
pub struct Dispatcher {
    /// Sites.
    pub sites: Vec<Arc<Site>>,
    /// Tickets: store → metrics → notifications.
    pub tickets: TicketService,
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
                if let Raised::New(ticket) = self.tickets.raise(t).await? {
                    tracing::info!(ticket = ticket.id, site = %ev.site, zone = %ev.zone, rule = %ev.rule, level = level.as_str(), value, assignee = ?ticket.assignee, detail = %ev.detail, "ticket raised");
                }
            }
            Transition::Upgrade { level, value } => {
                self.tickets.upgrade(&ev.site, &ev.zone, &ev.rule, level, measure(ev, value), ev.ts).await?;
            }
            Transition::Clear { value } => {
                self.tickets.auto_resolve(&ev.site, &ev.zone, &ev.rule, value, ev.ts).await?;
            }
        }
        Ok(())
    }
}

/// Moves late tickets up the ladder every `check_interval_ms` until `stop`.
pub async fn sla_clock(tickets: TicketService, cfg: EscalationConfig, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_millis(cfg.check_interval_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        if let Err(e) = tickets.escalate_late(&cfg, Utc::now()).await {
            tracing::error!(error = %e, "SLA clock cannot read tickets");
        }
    }
}

/// The ticket's measure of a rule event carrying `value`.
fn measure(ev: &RuleEvent, value: f64) -> Measure {
    Measure { metric: ev.metric, unit: ev.unit, value, lower_is_urgent: ev.lower_is_urgent, density: ev.density }
}
