//! Evidence snapshots for tickets, opt-in per camera (`evidence = { max_bytes = ... }`); without it no frame
//! ever leaves the edge.
//!
//! The edge listens to the centre's ticket notifications for its site (`{prefix}/{site}/tickets`). When a
//! ticket is raised or reopened on a zone that one of its evidence-enabled cameras sees, that camera encodes
//! its latest analysed frame with every person blurred and the JPEG kept under the size limit
//! ([`crate::vision::evidence::blurred_jpeg`]), and this task publishes it to
//! `{prefix}/{site}/evidence/{zone}/{ticket}` (QoS 1, payload `image/jpeg`). Other zones get nothing.
//!
//! The same cameras hand in their view ([`crowdgrid_proto::geometry::CameraView`]: a blurred frame and the
//! geometry they count with) at their first frame, after each settings change and every 10 minutes; this task
//! publishes it retained on `{prefix}/{site}/edge/{edge}/view/{camera}` for the engineer's geometry editor.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crowdgrid_proto::geometry::CameraView;

use crate::config::MqttConfig;
use crate::health::Health;

/// One snapshot asked of a camera.
#[derive(Debug)]
pub struct EvidenceAsk {
    /// The ticket it is for.
    pub ticket: i64,
    /// The zone.
    pub zone: String,
    /// Where the JPEG (or why there is none) goes.
    pub reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

/// One evidence-enabled camera.
#[derive(Debug)]
struct Camera {
    source_id: String,
    zones: Vec<String>,
    asks: Sender<EvidenceAsk>,
}

/// Where evidence-enabled cameras register the zones they see and hand in their views (cloned into every source
/// context).
#[derive(Debug, Clone)]
pub struct EvidenceHub {
    cameras: Arc<Mutex<Vec<Camera>>>,
    views: tokio::sync::mpsc::Sender<CameraView>,
    /// Taken by [`run`].
    views_rx: Arc<Mutex<Option<tokio::sync::mpsc::Receiver<CameraView>>>>,
}

/// Views waiting to be published (a view is a few hundred KB; a camera sends one every few minutes at most).
const VIEW_QUEUE: usize = 4;

impl Default for EvidenceHub {
    fn default() -> Self {
        let (views, rx) = tokio::sync::mpsc::channel(VIEW_QUEUE);
        Self { cameras: Arc::default(), views, views_rx: Arc::new(Mutex::new(Some(rx))) }
    }
}

impl EvidenceHub {
    /// The zones camera `source_id` sees now (its geometry changed).
    pub fn set_zones(&self, source_id: &str, zones: Vec<String>) {
        if let Some(c) = self.lock().iter_mut().find(|c| c.source_id == source_id) {
            c.zones = zones;
        }
    }

    /// Queues a camera's view for publishing; false when the queue is full (the view is dropped).
    pub fn offer_view(&self, v: CameraView) -> bool {
        self.views.try_send(v).is_ok()
    }

    /// A camera (`source_id`) offers snapshots of `zones` through `asks`.
    pub fn register(&self, source_id: &str, zones: Vec<String>, asks: Sender<EvidenceAsk>) {
        self.lock().push(Camera { source_id: source_id.to_string(), zones, asks });
    }

    /// True when no camera offers snapshots.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every camera that sees `zone`, in registration order: its source id and where to ask.
    pub fn cameras_for(&self, zone: &str) -> Vec<(String, Sender<EvidenceAsk>)> {
        self.lock()
            .iter()
            .filter(|c| c.zones.iter().any(|z| z == zone))
            .map(|c| (c.source_id.clone(), c.asks.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Camera>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Deserialize)]
struct Notification {
    event: String,
    ticket: TicketRef,
}

#[derive(Deserialize)]
struct TicketRef {
    id: i64,
    site: String,
    zone: String,
}

/// Runs until `shutdown`: answers ticket notifications of `site` with snapshots from the registered cameras.
pub async fn run(
    hub: EvidenceHub,
    mqtt: MqttConfig,
    edge_id: String,
    site: String,
    health: Health,
    shutdown: CancellationToken,
) {
    let base = mqtt.client_id.clone().unwrap_or_else(|| edge_id.clone());
    let mut o = MqttOptions::new(format!("{base}-evidence"), mqtt.host.clone(), mqtt.port);
    o.set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.max(5)));
    o.set_clean_session(true);
    o.set_max_packet_size(4 << 20, 4 << 20);
    let identity = crate::identity::Identity::new(&site, &edge_id, &mqtt);
    identity.login(&mut o, &mqtt);
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let tickets = format!("{}/{site}/tickets", mqtt.topic_prefix);
    let mut views = hub.views_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut outage_logged = false;
    tracing::info!(edge = %edge_id, topic = %tickets, "evidence snapshots offered on ticket notifications");
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(v) = next_view(&mut views) => {
                publish_view(&client, &identity, &mqtt.topic_prefix, (&site, &edge_id), v).await;
                continue;
            }
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                outage_logged = false;
                if let Err(e) = client.try_subscribe(tickets.as_str(), QoS::AtLeastOnce) {
                    tracing::error!(error = %e, "evidence: cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == tickets => {
                let Ok(n) = serde_json::from_slice::<Notification>(&p.payload) else {
                    tracing::debug!(topic = %p.topic, "evidence: not a ticket notification");
                    continue;
                };
                if !matches!(n.event.as_str(), "raised" | "reopened") || n.ticket.site != site {
                    continue;
                }
                let cameras = hub.cameras_for(&n.ticket.zone);
                if cameras.is_empty() {
                    continue;
                }
                let (client, prefix, health) = (client.clone(), mqtt.topic_prefix.clone(), health.clone());
                let identity = identity.clone();
                // Answered off the event loop: the camera replies after its current frame. A camera whose
                // pipeline has stopped (its receiver is gone) is skipped for the next one seeing the zone.
                tokio::spawn(async move {
                    let mut asked = None;
                    for (source_id, tx) in cameras {
                        let (reply, rx) = oneshot::channel();
                        if tx.send(EvidenceAsk { ticket: n.ticket.id, zone: n.ticket.zone.clone(), reply }).is_ok() {
                            asked = Some((source_id, rx));
                            break;
                        }
                    }
                    let Some((source_id, rx)) = asked else {
                        tracing::warn!(ticket = n.ticket.id, zone = %n.ticket.zone, "evidence: no running camera sees the zone");
                        return;
                    };
                    let jpeg = tokio::time::timeout(Duration::from_secs(10), rx).await;
                    match jpeg {
                        Ok(Ok(Ok(bytes))) => {
                            let t =
                                crowdgrid_proto::topic::evidence(&prefix, &n.ticket.site, &n.ticket.zone, n.ticket.id);
                            let len = bytes.len();
                            let payload = identity.seal(&t, bytes);
                            match client.publish(t.as_str(), QoS::AtLeastOnce, false, payload).await {
                                Ok(()) => {
                                    tracing::info!(ticket = n.ticket.id, zone = %n.ticket.zone, source = %source_id, bytes = len, "evidence snapshot sent")
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, ticket = n.ticket.id, "evidence snapshot not sent")
                                }
                            }
                        }
                        Ok(Ok(Err(why))) => health.rejected(
                            &source_id,
                            "camera",
                            "evidence_failed",
                            &format!("ticket {}: {why}", n.ticket.id),
                        ),
                        Ok(Err(_)) | Err(_) => health.rejected(
                            &source_id,
                            "camera",
                            "evidence_failed",
                            &format!("ticket {}: the camera did not answer", n.ticket.id),
                        ),
                    }
                });
            }
            Ok(_) => {}
            Err(e) => {
                if !outage_logged {
                    tracing::warn!(error = %e, "evidence: broker connection lost; retrying");
                    outage_logged = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

async fn next_view(views: &mut Option<tokio::sync::mpsc::Receiver<CameraView>>) -> Option<CameraView> {
    match views {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Publishes a camera's view retained on `{prefix}/{site}/edge/{edge}/view/{camera}`, signed: the centre keeps
/// the newest for the engineer's geometry editor, and gets it again after a restart.
async fn publish_view(
    client: &AsyncClient,
    identity: &crate::identity::Identity,
    prefix: &str,
    (site, edge): (&str, &str),
    v: CameraView,
) {
    let t = crowdgrid_proto::topic::edge_view(prefix, site, edge, &v.camera);
    let body = match serde_json::to_vec(&v) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, camera = %v.camera, "view not encoded");
            return;
        }
    };
    let len = body.len();
    match client.publish(t.as_str(), QoS::AtLeastOnce, true, identity.seal(&t, body)).await {
        Ok(()) => tracing::info!(camera = %v.camera, bytes = len, "camera view sent"),
        Err(e) => tracing::warn!(error = %e, camera = %v.camera, "camera view not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_answered_by_the_camera_that_sees_it() {
        let hub = EvidenceHub::default();
        assert!(hub.is_empty());
        let (tx, rx) = std::sync::mpsc::channel();
        hub.register("e/gate-cam", vec!["gate-plaza".into(), "pickup-lane".into()], tx);
        assert!(!hub.is_empty());
        assert!(hub.cameras_for("crossing").is_empty(), "nobody sees the crossing");
        let (other, _) = std::sync::mpsc::channel();
        hub.register("e/lane-cam", vec!["pickup-lane".into()], other);
        let found = hub.cameras_for("pickup-lane");
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["e/gate-cam", "e/lane-cam"], "both, in registration order");
        let (id, asks) = found[0].clone();
        assert_eq!(id, "e/gate-cam");
        let (reply, _answer) = oneshot::channel();
        asks.send(EvidenceAsk { ticket: 3, zone: "pickup-lane".into(), reply }).unwrap();
        assert_eq!(rx.try_recv().unwrap().ticket, 3);
    }

    #[test]
    fn ticket_notifications_parse() {
        let n: Notification = serde_json::from_str(
            r#"{"event":"raised","ticket":{"id":9,"site":"boai-school","zone":"pickup-lane","level":"warning"}}"#,
        )
        .unwrap();
        assert_eq!((n.event.as_str(), n.ticket.id, n.ticket.zone.as_str()), ("raised", 9, "pickup-lane"));
    }
}
