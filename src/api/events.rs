//! `GET /api/v1/events`: Server-Sent Events of zone, ticket and edge changes, filtered to what the
//! caller may see.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::auth::Caller;
use super::AppState;
use crate::central::events::LiveEvent;

/// `?site=`
#[derive(Deserialize)]
pub struct EventParams {
    site: Option<String>,
}

fn encode(e: &LiveEvent) -> Option<Event> {
    let (kind, data) = match e {
        LiveEvent::Zone(z) => ("zone", serde_json::to_string(z)),
        LiveEvent::Ticket { event, ticket } => {
            ("ticket", serde_json::to_string(&serde_json::json!({ "event": event, "ticket": ticket })))
        }
        LiveEvent::Edge(v) => ("edge", serde_json::to_string(v)),
    };
    data.ok().map(|d| Event::default().event(kind).data(d))
}

/// `GET /api/v1/events`
pub async fn stream(
    State(s): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<EventParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.events.subscribe();
    let stream = stream::unfold((rx, p, q.site), |(mut rx, p, site)| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let (esite, grid) = e.scope();
                    let site_ok = site.as_ref().is_none_or(|s| s == &esite);
                    let grid_ok = match &grid {
                        Some(g) => p.sees_grid(&esite, g),
                        None => p.reads_all() || p.grids.iter().any(|(s, _)| s == &esite),
                    };
                    if site_ok && grid_ok {
                        if let Some(ev) = encode(&e) {
                            return Some((Ok(ev), (rx, p, site)));
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let ev = Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(ev), (rx, p, site)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("ping"))
}
