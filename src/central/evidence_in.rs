//! Evidence snapshots coming in: admitted only for an open ticket of that site and zone, from an edge that has a
//! camera or drone reporting that zone, and stored within the evidence budget. Runs as its own task so a slow
//! insert (up to 1 MiB) never stops the ingest loop from taking readings in; a full queue drops the snapshot,
//! counted. Every refusal is counted by reason (`crowdgrid_readings_rejected_total{reason="evidence_…"}`).

use std::sync::{Arc, RwLock};

use crowdgrid_proto::SourceKind;
use tokio::sync::mpsc;

use super::live::Live;
use crate::metrics::Metrics;
use crate::store::evidence::{Evidence, EvidenceStore};
use crate::store::tickets::TicketStore;

/// A snapshot that passed the format checks, with who signed it.
#[derive(Debug)]
pub struct Offered {
    /// The snapshot.
    pub evidence: Evidence,
    /// The signing edge (`None` when accepted unsigned with authentication off).
    pub edge: Option<String>,
}

/// What the intake task needs.
pub struct Intake {
    /// Where snapshots go.
    pub store: EvidenceStore,
    /// To check the ticket.
    pub tickets: TicketStore,
    /// To check that the edge sees the zone.
    pub live: Arc<RwLock<Live>>,
    /// Counters.
    pub metrics: Metrics,
    /// All snapshots together stay under this many bytes.
    pub total_bytes: i64,
}

/// Why a snapshot is not admitted (a metric label).
async fn admit(intake: &Intake, o: &Offered) -> Result<(), &'static str> {
    let e = &o.evidence;
    let (ticket, _) = intake.tickets.get(e.ticket).await.map_err(|_| "evidence_no_ticket")?;
    if ticket.site != e.site || ticket.zone != e.zone {
        return Err("evidence_wrong_zone");
    }
    if ticket.state == "resolved" {
        return Err("evidence_ticket_closed");
    }
    if let Some(edge) = &o.edge {
        let live = intake.live.read().unwrap_or_else(|p| p.into_inner());
        let sees = live.zone(&e.site, &e.zone).is_some_and(|z| {
            z.sources.iter().any(|(id, s)| {
                matches!(s.kind, SourceKind::Camera | SourceKind::Drone)
                    && crowdgrid_proto::reading::edge_of_source(id) == Some(edge.as_str())
            })
        });
        if !sees {
            return Err("evidence_not_seen");
        }
    }
    Ok(())
}

/// Admits and stores snapshots until the channel closes.
pub async fn run(intake: Intake, mut rx: mpsc::Receiver<Offered>) {
    while let Some(o) = rx.recv().await {
        let (ticket, bytes) = (o.evidence.ticket, o.evidence.jpeg.len());
        if let Err(reason) = admit(&intake, &o).await {
            intake.metrics.reject(reason);
            tracing::debug!(ticket, edge = ?o.edge, reason, "evidence snapshot refused");
            continue;
        }
        match intake.store.save(o.evidence, intake.total_bytes).await {
            Ok(removed) => tracing::info!(ticket, bytes, removed, "evidence snapshot stored"),
            Err(err) => tracing::error!(error = %err, ticket, "evidence snapshot not stored"),
        }
    }
}

/// A bounded queue in front of [`run`].
pub fn channel() -> (mpsc::Sender<Offered>, mpsc::Receiver<Offered>) {
    mpsc::channel(16)
}
