//! `GET /api/v1/events`: Server-Sent Events of zone, ticket and edge changes, filtered to what the
//! caller may see, plus a `heartbeat` event every 10 s so a page can tell a quiet centre from a dead one.
//! At most `[api] max_event_streams` are open (503 past that); every stream ends at shutdown so the server can
//! stop. `?zones=level` sends a zone only when its level changes (the grid worker's phone: a zone's every
//! reading is about 1 KB/s of mobile data over a shift, its level changes a few times), `?zones=none` no zone
//! at all. Opened with the `Authorization` header, or with `?ticket=` from `POST /api/v1/events/ticket`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::auth::bearer;
use super::json::ApiQuery;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::central::events::LiveEvent;

/// How often a `heartbeat` event is sent.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// `?site=&ticket=&zones=`
#[derive(Deserialize)]
pub struct EventParams {
    site: Option<String>,
    ticket: Option<String>,
    #[serde(default)]
    zones: ZoneEvents,
}

/// Which zone events a stream carries.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ZoneEvents {
    /// Every change (each fused reading).
    #[default]
    All,
    /// Only when a zone's level differs from the last one this stream sent.
    Level,
    /// None.
    None,
}

/// What a stream has sent of each zone, to send level changes only.
#[derive(Default)]
struct Sent {
    levels: std::collections::HashMap<(String, String), crowdgrid_proto::Level>,
}

impl Sent {
    /// Whether `e` goes out on a stream that asked for `which`.
    fn wanted(&mut self, which: ZoneEvents, e: &LiveEvent) -> bool {
        let LiveEvent::Zone(z) = e else { return true };
        match which {
            ZoneEvents::All => true,
            ZoneEvents::None => false,
            ZoneEvents::Level => {
                let key = (z.site.clone(), z.zone.clone());
                self.levels.insert(key, z.level) != Some(z.level)
            }
        }
    }
}

/// Who opens a stream: the bearer header, else a stream ticket.
async fn stream_caller(parts: &Parts, state: &AppState, ticket: Option<&str>) -> Result<Principal, ApiError> {
    if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
        return Ok(Principal::new(bearer(parts, state).await?, &state.sites));
    }
    let ticket = ticket.ok_or_else(|| ApiError::Unauthorized("missing bearer token or stream ticket".into()))?;
    let rec = state
        .stream_tickets
        .redeem(ticket)
        .ok_or_else(|| ApiError::Unauthorized("unknown or expired stream ticket".into()))?;
    Ok(Principal::new(rec, &state.sites))
}

/// A stream ticket.
#[derive(Serialize)]
pub struct StreamTicket {
    ticket: String,
    expires_in_s: u64,
}

/// `POST /api/v1/events/ticket`: a ticket that opens event streams for 60 s (any role).
pub async fn ticket(State(s): State<AppState>, parts: Parts) -> Result<Json<StreamTicket>, ApiError> {
    let rec = bearer(&parts, &s).await?;
    let ticket = s.stream_tickets.issue(rec);
    Ok(Json(StreamTicket { ticket, expires_in_s: super::limit::TICKET_TTL.as_secs() }))
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
    parts: Parts,
    ApiQuery(q): ApiQuery<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let p = stream_caller(&parts, &s, q.ticket.as_deref()).await?;
    if let Some(site) = &q.site {
        if !s.sites.iter().any(|x| &x.config.id == site) {
            return Err(ApiError::NotFound(format!("no site {site:?}")));
        }
    }
    let permit = s
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("every event stream slot is taken; try again later".into()))?;
    let rx = s.events.subscribe();
    let which = q.zones;
    let events = stream::unfold((rx, p, q.site, Sent::default()), move |(mut rx, p, site, mut sent)| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let (esite, grid) = e.scope();
                    let site_ok = site.as_ref().is_none_or(|s| s == &esite);
                    let grid_ok = match &grid {
                        Some(g) => p.sees_grid(&esite, g),
                        None => p.reads_all() || p.grids.iter().any(|(s, _)| s == &esite),
                    };
                    if site_ok && grid_ok && sent.wanted(which, &e) {
                        if let Some(ev) = encode(&e) {
                            return Some((Ok(ev), (rx, p, site, sent)));
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let ev = Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(ev), (rx, p, site, sent)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let heartbeats = tokio_stream_interval(HEARTBEAT)
        .map(|_| Ok::<_, Infallible>(Event::default().event("heartbeat").data(chrono::Utc::now().to_rfc3339())));
    let shutdown = s.shutdown.clone();
    let stream = stream::select(events, heartbeats)
        .take_until(async move { shutdown.cancelled_owned().await })
        // The permit lives as long as the stream: dropped when the client goes or the centre stops.
        .map(move |e| {
            let _held = &permit;
            e
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("ping")))
}

/// Ticks every `every`, the first after `every`.
fn tokio_stream_interval(every: Duration) -> impl Stream<Item = ()> {
    stream::unfold(tokio::time::interval_at(tokio::time::Instant::now() + every, every), |mut i| async move {
        i.tick().await;
        Some(((), i))
    })
}
