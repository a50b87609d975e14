//! Ticket events across centre instances that share PostgreSQL (`[store] dispatch_url`): an operator connected to
//! any instance sees every ticket change, whichever instance made it. Each change is announced with PostgreSQL's
//! `NOTIFY` on [`CHANNEL`] — `{"origin", "event", "id"}`, the ticket itself read back from the shared store by the
//! listeners, so the payload stays far below NOTIFY's 8,000 bytes — and every instance `LISTEN`s on its own
//! connection and puts other instances' changes on its live stream.
//!
//! Why PostgreSQL and not the broker's `{prefix}/{site}/tickets` topic: only the centre instances can reach the
//! database, while on the embedded broker (no per-topic ACL) a logged-in edge could publish on that topic. A change
//! made while a listener was reconnecting is not replayed on its stream (the ticket list, `GET /api/v1/tickets`,
//! has it).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::events::{Events, LiveEvent};
use crate::store::tickets::TicketStore;

/// The NOTIFY channel.
pub const CHANNEL: &str = "crowdgrid_ticket_events";

/// Announcements waiting to be looked up; more are dropped (counted in the log), the pages' polling covers them.
const BACKLOG: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    origin: String,
    event: String,
    id: i64,
}

/// This instance's side of the fan-out: announces its own ticket changes.
#[derive(Clone)]
pub struct Fanout {
    pool: deadpool_postgres::Pool,
    origin: Arc<str>,
}

impl Fanout {
    /// Announces as `origin` (this instance's id, unique per process) through `pool`.
    pub fn new(pool: deadpool_postgres::Pool, origin: Arc<str>) -> Self {
        Self { pool, origin }
    }

    /// Tells the other instances that ticket `id` changed (`event`); logged, never fatal.
    pub async fn announce(&self, event: &str, id: i64) {
        let a = Announcement { origin: self.origin.to_string(), event: event.to_string(), id };
        let Ok(payload) = serde_json::to_string(&a) else { return };
        let sent = async {
            let c = self.pool.get().await.map_err(|e| e.to_string())?;
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await.map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, ticket = id, event, "ticket change not announced to the other instances");
        }
    }
}

/// Listens until `stop`: other instances' ticket changes, read back from `tickets`, onto `events`.
pub async fn listen(url: String, origin: Arc<str>, tickets: TicketStore, events: Events, stop: CancellationToken) {
    listen_channel(url, CHANNEL, stop, move |payload| {
        let (origin, tickets, events) = (origin.clone(), tickets.clone(), events.clone());
        async move { forward(&payload, &origin, &tickets, &events).await }
    })
    .await
}

/// Listens on `channel` until `stop`, handing each notification's payload to `on` in order. Reconnects every
/// second while the database is away; a payload that arrives while [`BACKLOG`] wait is dropped (logged).
pub async fn listen_channel<F, Fut>(url: String, channel: &'static str, stop: CancellationToken, mut on: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = mpsc::channel::<String>(BACKLOG);
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.try_send(n.payload().to_string()).is_err() {
                                    tracing::warn!(
                                        channel,
                                        "announcements arrive faster than they are read; one dropped"
                                    );
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, channel, "fan-out: database connection lost");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {channel}")).await {
                    Ok(()) => {
                        tracing::info!(channel, "listening for other instances' changes");
                        loop {
                            tokio::select! {
                                _ = stop.cancelled() => {
                                    driver.abort();
                                    return;
                                }
                                m = rx.recv() => match m {
                                    Some(payload) => on(payload).await,
                                    None => break,
                                },
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, channel, "fan-out: LISTEN failed"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, channel, "fan-out: cannot connect to the database"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Puts another instance's change on this instance's stream.
async fn forward(payload: &str, origin: &str, tickets: &TicketStore, events: &Events) {
    let a: Announcement = match serde_json::from_str(payload) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "ticket fan-out: not an announcement");
            return;
        }
    };
    if a.origin == origin {
        return;
    }
    match tickets.get(a.id).await {
        Ok((ticket, _)) => events.send(LiveEvent::Ticket { event: a.event, ticket: Box::new(ticket) }),
        Err(e) => tracing::warn!(error = %e, ticket = a.id, "ticket fan-out: announced ticket not readable"),
    }
}
