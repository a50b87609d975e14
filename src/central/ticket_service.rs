//! The one way tickets change: every raise, upgrade, reopen, auto-resolve, action and escalation goes through
//! here, is decided by `ticket_state::after` inside the store's transaction, and then counted and notified by
//! [`TicketService::changed`] — written once, for the dispatcher (rule events), the API (people's actions) and
//! the SLA clock (late tickets).

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;

use super::config::EscalationConfig;
use super::escalation;
use super::notify::Notifier;
use crate::metrics::Metrics;
use crate::store::tickets::{Action, Measure, NewTicket, Raised, Ticket, TicketStore};
use crate::store::StoreError;

/// The ticket store with its metrics and notifications.
#[derive(Clone)]
pub struct TicketService {
    /// The store (reads go straight to it).
    pub store: TicketStore,
    metrics: Metrics,
    notifier: Notifier,
}

impl TicketService {
    /// The service over `store`.
    pub fn new(store: TicketStore, metrics: Metrics, notifier: Notifier) -> Self {
        TicketService { store, metrics, notifier }
    }

    /// After a change is stored: its metric, then the notification (MQTT topics, live stream, webhooks).
    async fn changed(&self, event: &str, t: &Ticket) {
        match event {
            "raised" => self.metrics.tickets_opened.with_label_values(&[t.level.as_str()]).inc(),
            "resolved" => {
                let how = if t.resolved_by.as_deref() == Some("system") { "auto" } else { "worker" };
                self.metrics.tickets_resolved.with_label_values(&[how]).inc();
            }
            "escalated" => self.metrics.escalations.with_label_values(&[t.tier.as_str()]).inc(),
            _ => {}
        }
        self.notifier.ticket(event, t).await;
    }

    /// A rule fired: a new ticket, a reopened one, or the open one (upgraded if `t.level` is higher).
    pub async fn raise(&self, t: NewTicket) -> Result<Raised, StoreError> {
        let (level, measure, ts) = (t.level, t.measure, t.ts);
        let (site, zone, rule) = (t.site.clone(), t.zone.clone(), t.rule.clone());
        let raised = self.store.raise(t).await?;
        match &raised {
            Raised::New(ticket) => self.changed("raised", ticket).await,
            Raised::Reopened(ticket) => self.changed(Action::Reopen.done(), ticket).await,
            Raised::Existing(ticket) if ticket.level() < level => {
                self.upgrade(&site, &zone, &rule, level, measure, ts).await?;
            }
            Raised::Existing(_) => {}
        }
        Ok(raised)
    }

    /// A rule's level rose on the open ticket of (site, zone, rule).
    pub async fn upgrade(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        level: Level,
        measure: Measure,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        let t = self.store.upgrade(site, zone, rule, level, measure, ts).await?;
        if let Some(t) = &t {
            self.changed("upgraded", t).await;
        }
        Ok(t)
    }

    /// A rule's value stayed under its clear level: the open ticket of (site, zone, rule) resolves itself.
    pub async fn auto_resolve(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        value: f64,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        let t = self.store.clear(site, zone, rule, value, ts).await?;
        if let Some(t) = &t {
            self.changed(Action::AutoResolve.done(), t).await;
        }
        Ok(t)
    }

    /// A person's action on ticket `id`: acknowledge, on site, resolve (with `note`), escalate (with `note` as
    /// the reason), or reassign to `to`.
    pub async fn act(
        &self,
        ticket: &Ticket,
        action: Action,
        actor: &str,
        note: &str,
        to: Option<&str>,
        cfg: &EscalationConfig,
    ) -> Result<Ticket, StoreError> {
        let id = ticket.id;
        let t = match action {
            Action::Acknowledge | Action::OnSite | Action::Resolve => {
                self.store.transition(id, action, actor, note).await?
            }
            Action::Escalate => {
                let reason = if note.trim().is_empty() { "whistle blown" } else { note };
                let due = escalation::after_manual(cfg, ticket, Utc::now());
                self.store.escalate(id, actor, reason, due).await?
            }
            Action::Reassign => self.store.reassign(id, to.unwrap_or_default(), actor, note).await?,
            Action::AutoResolve | Action::Reopen => {
                return Err(StoreError::Transition { id, state: ticket.state.clone(), action: action.done().into() })
            }
        };
        tracing::info!(ticket = id, action = action.done(), actor, "ticket action");
        self.changed(action.done(), &t).await;
        Ok(t)
    }

    /// One pass of the SLA clock: every late ticket one tier up (once, even with several instances), notified.
    pub async fn escalate_late(&self, cfg: &EscalationConfig, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
        let up = escalation::escalate_late(&self.store, cfg, now).await?;
        for t in &up {
            self.changed(Action::Escalate.done(), t).await;
        }
        Ok(up)
    }
}
