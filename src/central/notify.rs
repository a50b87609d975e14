//! Ticket notifications: MQTT for the assignee, the site and the escalation tier; the live event
//! stream (and, with PostgreSQL, the other instances' streams: `fanout`); and webhooks through the outbox, signed
//! with HMAC-SHA256 and retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::site::Site;
use crowdgrid_proto::topic;
use hmac::{Hmac, Mac};
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::config::WebhookConfig;
use super::events::{Events, LiveEvent};
use crate::metrics::Metrics;
use crate::store::outbox::Outbox;
use crate::store::tickets::{Ticket, TicketStore, Tier};

/// The JSON sent on every channel.
#[derive(Debug, Serialize)]
pub struct Notification<'a> {
    /// `raised`, `upgraded`, `reopened`, `acknowledged`, `on_site`, `escalated`, `reassigned`, `resolved`.
    pub event: &'a str,
    /// The ticket after the change.
    pub ticket: &'a Ticket,
}

/// Sends ticket changes everywhere they must go.
#[derive(Clone)]
pub struct Notifier {
    /// MQTT client of the notifier connection.
    pub client: AsyncClient,
    /// Topic prefix.
    pub prefix: String,
    /// Metrics.
    pub metrics: Metrics,
    /// Live stream.
    pub events: Events,
    /// Webhook outbox.
    pub outbox: Outbox,
    /// Configured webhooks.
    pub webhooks: Arc<Vec<WebhookConfig>>,
    /// Sites (to name the department for the whistle).
    pub sites: Vec<Arc<Site>>,
    /// Other instances sharing the dispatch database hear of the change (PostgreSQL only).
    pub fanout: Option<super::fanout::Fanout>,
}

/// The MQTT topic of the tier holding a ticket, `None` at grid level (the worker's topic covers it).
pub fn tier_topic(prefix: &str, t: &Ticket) -> Option<String> {
    let unit = match t.tier() {
        Tier::Grid => return None,
        Tier::Community => t.community.clone(),
        Tier::Subdistrict | Tier::Department => t.subdistrict.clone(),
    };
    Some(format!("{prefix}/{}/escalations/{}/{unit}/tickets", t.site, t.tier))
}

impl Notifier {
    /// Publishes `event` for `ticket` on MQTT, the live stream and every webhook.
    pub async fn ticket(&self, event: &str, ticket: &Ticket) {
        let payload = match serde_json::to_string(&Notification { event, ticket }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode notification");
                return;
            }
        };
        let mut topics = vec![format!("{}/{}/tickets", self.prefix, ticket.site)];
        if let Some(w) = &ticket.assignee {
            topics.push(topic::worker_tickets(&self.prefix, &ticket.site, w));
        }
        topics.extend(tier_topic(&self.prefix, ticket));
        for t in topics {
            // Awaiting the request channel only waits: the notifier task keeps polling its event loop.
            if let Err(e) = self.client.publish(t.as_str(), QoS::AtLeastOnce, false, payload.clone().into_bytes()).await
            {
                self.metrics.notify_errors.inc();
                tracing::error!(error = %e, topic = t, ticket = ticket.id, "notification not published");
            }
        }
        self.events.send(LiveEvent::Ticket { event: event.to_string(), ticket: Box::new(ticket.clone()) });
        if let Some(f) = &self.fanout {
            f.announce(event, ticket.id).await;
        }
        for w in self.webhooks.iter() {
            if let Err(e) = self.outbox.push(ticket.id, &w.name, payload.clone()).await {
                self.metrics.notify_errors.inc();
                tracing::error!(error = %e, webhook = %w.name, ticket = ticket.id, "cannot queue webhook delivery");
            }
        }
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers the outbox until `stop`: each due delivery is POSTed; failures back off exponentially
/// (0.5 s doubling to 60 s) up to the webhook's `max_attempts`, after which the ticket's trail says so.
pub async fn deliver_webhooks(
    outbox: Outbox,
    tickets: TicketStore,
    webhooks: Arc<Vec<WebhookConfig>>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    if webhooks.is_empty() {
        return;
    }
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            return;
        }
    };
    let max = webhooks.iter().map(|w| w.max_attempts).max().unwrap_or(1);
    loop {
        let due = match outbox.due(Utc::now(), max, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "outbox read failed");
                Vec::new()
            }
        };
        for d in due {
            let Some(hook) = webhooks.iter().find(|w| w.name == d.target) else { continue };
            if d.attempts >= i64::from(hook.max_attempts) {
                continue;
            }
            let result = http
                .post(&hook.url)
                .header("Content-Type", "application/json")
                .header("X-Crowdgrid-Delivery", d.id.to_string())
                .header("X-Crowdgrid-Signature", signature(&hook.secret, d.payload.as_bytes()))
                .body(d.payload.clone())
                .send()
                .await;
            let outcome = match result {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    metrics.webhooks_delivered.inc();
                    let _ = outbox.delivered(d.id).await;
                    let _ = tickets
                        .note(d.ticket_id, "notified", "system", &format!("webhook {} (delivery {})", hook.name, d.id))
                        .await;
                }
                Err(err) => {
                    metrics.webhook_failures.inc();
                    let attempts = d.attempts + 1;
                    let backoff = Duration::from_millis(500u64.saturating_mul(1 << attempts.min(7)));
                    let next = Utc::now()
                        + chrono::Duration::from_std(backoff.min(Duration::from_secs(60))).unwrap_or_default();
                    let _ = outbox.failed(d.id, &err, next).await;
                    if attempts >= i64::from(hook.max_attempts) {
                        tracing::error!(webhook = %hook.name, delivery = d.id, error = %err, "webhook delivery abandoned");
                        let _ = tickets
                            .note(
                                d.ticket_id,
                                "notify_failed",
                                "system",
                                &format!("webhook {}: {err} after {attempts} attempts", hook.name),
                            )
                            .await;
                    } else {
                        tracing::warn!(webhook = %hook.name, delivery = d.id, attempts, error = %err, "webhook delivery failed; will retry");
                    }
                }
            }
        }
        if let Ok(pending) = outbox.undelivered().await {
            metrics.webhooks_pending.set(pending.len() as i64);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
