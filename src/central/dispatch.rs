//! Turns rule actions into tickets and notifications. Runs as its own task so a slow database or
//! broker never stalls ingest.

use std::sync::Arc;

use crowdgrid_proto::site::Site;
use crowdgrid_proto::topic;
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use tokio::sync::mpsc;

use super::rule::{RuleAction, DENSITY_RULE};
use crate::metrics::Metrics;
use crate::store::tickets::{NewTicket, Ticket, TicketStore};

/// A rule action for one zone.
#[derive(Debug, Clone)]
pub struct ZoneAction {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// What to do.
    pub action: RuleAction,
}

/// The JSON published to workers and on the site's ticket topic.
#[derive(Debug, Serialize)]
pub struct Notification<'a> {
    /// `raised`, `upgraded` or `resolved`.
    pub event: &'a str,
    /// The ticket after the change.
    pub ticket: &'a Ticket,
}

/// Everything the dispatcher needs.
pub struct Dispatcher {
    /// Sites by id.
    pub sites: Vec<Arc<Site>>,
    /// Ticket store.
    pub tickets: TicketStore,
    /// MQTT client for notifications.
    pub client: AsyncClient,
    /// Topic prefix.
    pub prefix: String,
    /// Metrics.
    pub metrics: Metrics,
}

impl Dispatcher {
    /// Handles actions until the channel closes.
    pub async fn run(self, mut rx: mpsc::Receiver<ZoneAction>) {
        while let Some(a) = rx.recv().await {
            self.handle(a).await;
        }
        tracing::debug!("dispatcher drained");
    }

    /// Applies one action, retrying store failures (a lost action would be a lost ticket: the rule
    /// state already counts it as raised).
    async fn handle(&self, a: ZoneAction) {
        let mut wait = std::time::Duration::from_millis(100);
        for attempt in 1..=10 {
            match self.apply(&a).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, attempt, site = %a.site, zone = %a.zone, "ticket store failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
        self.metrics.notify_errors.inc();
        tracing::error!(site = %a.site, zone = %a.zone, action = ?a.action, "ticket action abandoned after 10 attempts");
    }

    async fn apply(&self, a: &ZoneAction) -> Result<(), crate::store::StoreError> {
        let Some(site) = self.sites.iter().find(|s| s.config.id == a.site) else { return Ok(()) };
        let Some(zone) = site.zone(&a.zone) else { return Ok(()) };
        let result = match a.action.clone() {
            RuleAction::Raise { level, density, ts } => {
                let grid = zone.config.grid.clone();
                let candidates = site.workers_of_grid(&grid).map(|w| w.id.clone()).collect();
                let t = NewTicket {
                    site: a.site.clone(),
                    zone: a.zone.clone(),
                    grid,
                    rule: DENSITY_RULE.to_string(),
                    level,
                    density,
                    ts,
                    candidates,
                };
                match self.tickets.raise(t).await {
                    Ok((ticket, true)) => {
                        self.metrics.tickets_opened.with_label_values(&[level.as_str()]).inc();
                        tracing::info!(ticket = ticket.id, site = %a.site, zone = %a.zone, level = level.as_str(), density, assignee = ?ticket.assignee, "ticket raised");
                        Ok(Some(("raised", ticket)))
                    }
                    Ok((ticket, false)) if crowdgrid_proto::Level::parse(&ticket.level).is_some_and(|l| l < level) => {
                        self.tickets
                            .upgrade(&a.site, &a.zone, DENSITY_RULE, level, density, ts)
                            .await
                            .map(|t| t.map(|t| ("upgraded", t)))
                    }
                    Ok((_, false)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            RuleAction::Upgrade { level, density, ts } => self
                .tickets
                .upgrade(&a.site, &a.zone, DENSITY_RULE, level, density, ts)
                .await
                .map(|t| t.map(|t| ("upgraded", t))),
            RuleAction::Clear { density, ts } => {
                let r = self.tickets.auto_resolve(&a.site, &a.zone, DENSITY_RULE, density, ts).await;
                if let Ok(Some(t)) = &r {
                    self.metrics.tickets_resolved.with_label_values(&["auto"]).inc();
                    tracing::info!(ticket = t.id, site = %a.site, zone = %a.zone, density, "ticket auto-resolved");
                }
                r.map(|t| t.map(|t| ("resolved", t)))
            }
        };
        if let Some((event, ticket)) = result? {
            self.notify(event, &ticket).await;
        }
        Ok(())
    }

    /// Publishes a ticket change to the assignee's topic and the site's ticket topic.
    pub async fn notify(&self, event: &str, ticket: &Ticket) {
        notify(&self.client, &self.prefix, &self.metrics, event, ticket).await;
    }
}

/// Publishes a ticket change (QoS 1) to `{prefix}/{site}/workers/{assignee}/tickets` and `{prefix}/{site}/tickets`.
pub async fn notify(client: &AsyncClient, prefix: &str, metrics: &Metrics, event: &str, ticket: &Ticket) {
    let payload = match serde_json::to_vec(&Notification { event, ticket }) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode notification");
            return;
        }
    };
    let mut topics = vec![format!("{prefix}/{}/tickets", ticket.site)];
    if let Some(w) = &ticket.assignee {
        topics.push(topic::worker_tickets(prefix, &ticket.site, w));
    }
    for t in topics {
        // The request channel is awaited (not try_*): the ingest task keeps polling the event loop,
        // so this only waits, it cannot deadlock.
        if let Err(e) = client.publish(t.as_str(), QoS::AtLeastOnce, false, payload.clone()).await {
            metrics.notify_errors.inc();
            tracing::error!(error = %e, topic = t, ticket = ticket.id, "notification not published");
        }
    }
}
