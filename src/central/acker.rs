//! Commit acknowledgements out: after the store writer commits a batch, each edge with readings in it gets one
//! [`CommitAck`] on `{prefix}/{site}/edge/{edge}/ack`, signed with the credential it signed its readings with
//! (unsigned where it sent unsigned readings with authentication off). The edge deletes those readings from its
//! queue only then; until then it re-sends them, and the centre drops the copies.

use std::collections::BTreeMap;

use crowdgrid_proto::ack::CommitAck;
use crowdgrid_proto::{signed, topic};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;

use crate::auth::edge_credentials::{Registry, CENTRE_ID};
use crate::metrics::Metrics;
use crate::store::writer::Ack;

/// Publishes acknowledgements until the writer's channel closes (after its last commit).
pub async fn run(
    client: AsyncClient,
    prefix: String,
    registry: Registry,
    metrics: Metrics,
    mut rx: mpsc::Receiver<Vec<Ack>>,
) {
    while let Some(mut acks) = rx.recv().await {
        // Coalesce what queued up meanwhile: fewer, larger messages under load.
        while let Ok(more) = rx.try_recv() {
            acks.extend(more);
        }
        // (site, edge, kid) → (source_id, epoch, seq) committed.
        type Key<'a> = (&'a str, &'a str, Option<u32>);
        let mut by_edge: BTreeMap<Key, Vec<(&str, u64, u64)>> = BTreeMap::new();
        for a in &acks {
            by_edge.entry((&a.site, &a.edge, a.kid)).or_default().push((&a.source_id, a.epoch, a.seq));
        }
        for ((site, edge, kid), items) in by_edge {
            let body = match serde_json::to_vec(&CommitAck::from_triples(items)) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a commit acknowledgement");
                    continue;
                }
            };
            let t = topic::edge_ack(&prefix, site, edge);
            let payload = match kid {
                Some(kid) => match registry.key(site, edge, kid) {
                    Some(cred) => signed::seal(&cred, CENTRE_ID, &t, &body),
                    // Revoked since: the edge may not be told anything; its readings are stored regardless.
                    None => continue,
                },
                None => body,
            };
            match client.publish(t, QoS::AtLeastOnce, false, payload).await {
                Ok(()) => metrics.acks_sent.inc(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot queue a commit acknowledgement; the edge will resend");
                    return;
                }
            }
        }
    }
    tracing::debug!("acknowledger drained");
}
