//! The live event stream: zone changes, ticket changes and edge status, fanned out to SSE clients.

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use serde::Serialize;
use tokio::sync::broadcast;

use super::edges::EdgeView;
use crate::store::tickets::Ticket;

/// A zone's new state.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneEvent {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Grid (for per-worker filtering).
    pub grid: String,
    /// Level with hysteresis.
    pub level: Level,
    /// People per m².
    pub density: f64,
    /// People.
    pub count: f64,
    /// Reading time.
    pub ts: DateTime<Utc>,
    /// Source that set it.
    pub from: &'static str,
}

/// One event on the stream.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A zone changed.
    Zone(ZoneEvent),
    /// A ticket changed (`event` is `raised`, `upgraded`, `acknowledged`, ...).
    Ticket { event: String, ticket: Box<Ticket> },
    /// An edge's status changed.
    Edge(Box<EdgeView>),
}

impl LiveEvent {
    /// `(site, grid)` the event belongs to; `None` for site-wide events (edges).
    pub fn scope(&self) -> (String, Option<String>) {
        match self {
            LiveEvent::Zone(z) => (z.site.clone(), Some(z.grid.clone())),
            LiveEvent::Ticket { ticket, .. } => (ticket.site.clone(), Some(ticket.grid.clone())),
            LiveEvent::Edge(e) => (e.status.site.clone(), None),
        }
    }
}

/// Sender half, cloned wherever events originate. Sending never blocks; slow clients lag.
#[derive(Clone)]
pub struct Events(broadcast::Sender<LiveEvent>);

impl Events {
    /// A stream buffering `capacity` events per slow client.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity).0)
    }

    /// Publishes an event (dropped if nobody listens).
    pub fn send(&self, e: LiveEvent) {
        let _ = self.0.send(e);
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.subscribe()
    }
}
