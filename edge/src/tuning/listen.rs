//! The settings listener: one MQTT client per edge subscribed to its retained settings topic; each message is
//! taken only if the centre signed it with this edge's key, checked, its models fetched, and every camera whose
//! settings version changed is sent a [`Retune`]. A camera that disappears from the message goes back to the
//! edge file's settings. Refusals are counted on the camera (`settings_refused`) and shown in its status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crowdgrid_proto::tuning::{CameraSettings, EdgeSettings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

use super::{fetch, ModelChange, Retune, TuningHub};
use crate::config::MqttConfig;
use crate::health::Health;
use crate::identity::Identity;
use crate::vision::manifest::ModelSpec;

/// Largest settings message accepted (a few cameras' settings and manifest entries fit in a few KB).
const MAX_SETTINGS_BYTES: usize = 256 << 10;

/// What the listener needs besides the hub.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Broker settings.
    pub mqtt: MqttConfig,
    /// Who we are.
    pub identity: Identity,
    /// `[tuning] centre_api`.
    pub centre_api: Option<String>,
    /// Where fetched models are kept.
    pub cache: PathBuf,
    /// Counters.
    pub health: Health,
}

/// The camera's retune for `s` (fetching its model when it has one).
async fn retune(l: &Listener, http: &reqwest::Client, s: &CameraSettings) -> Retune {
    let problems = s.problems();
    let model = if !problems.is_empty() {
        ModelChange::Refused(problems.join("; "))
    } else {
        match &s.model {
            None => ModelChange::Configured,
            Some(m) => match (&l.centre_api, serde_json::from_value::<ModelSpec>(m.spec.clone())) {
                (None, _) => ModelChange::Refused("a model was assigned and [tuning] centre_api is not set".into()),
                (_, Err(e)) => ModelChange::Refused(format!("the model's manifest entry is not valid: {e}")),
                (Some(_), Ok(spec)) if spec.sha256 != m.sha256 => {
                    ModelChange::Refused("the manifest entry's sha256 is not the assignment's".into())
                }
                (Some(api), Ok(mut spec)) => match fetch::fetch(http, api, &l.identity, &l.cache, m).await {
                    Ok(path) => {
                        spec.file = path;
                        ModelChange::Pool(Box::new(spec))
                    }
                    Err(why) => ModelChange::Refused(why),
                },
            },
        }
    };
    Retune {
        version: s.version,
        person_threshold: s.person_threshold,
        vehicle_threshold: s.vehicle_threshold,
        nms_iou: s.nms_iou,
        model,
        geometry: s.geometry.clone(),
    }
}

/// Runs until `shutdown`.
pub async fn run(hub: TuningHub, l: Listener, shutdown: CancellationToken) {
    let base = l.mqtt.client_id.clone().unwrap_or_else(|| l.identity.edge.clone());
    let mut o = MqttOptions::new(format!("{base}-settings"), l.mqtt.host.clone(), l.mqtt.port);
    o.set_keep_alive(Duration::from_secs(l.mqtt.keep_alive_s.max(5)));
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_SETTINGS_BYTES, MAX_SETTINGS_BYTES);
    l.identity.login(&mut o, &l.mqtt);
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let topic = crowdgrid_proto::topic::edge_settings(&l.mqtt.topic_prefix, &l.identity.site, &l.identity.edge);
    let http = reqwest::Client::new();
    // Settings version each camera was last sent (absent: the edge file's).
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    let mut outage_logged = false;
    tracing::info!(topic = %topic, cameras = ?hub.ids(), "camera settings taken from the centre");
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                outage_logged = false;
                if let Err(e) = client.try_subscribe(topic.as_str(), QoS::AtLeastOnce) {
                    tracing::error!(error = %e, "settings: cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                let settings = match l.identity.from_centre(&topic, &p.payload) {
                    Ok([]) => EdgeSettings::default(),
                    Ok(body) => match serde_json::from_slice::<EdgeSettings>(body) {
                        Ok(s) => s,
                        Err(e) => {
                            refuse_all(&hub, &l.health, "settings_malformed", &format!("settings: {e}"));
                            continue;
                        }
                    },
                    Err(why) => {
                        refuse_all(&hub, &l.health, &why.reason("settings"), "settings not signed by the centre");
                        continue;
                    }
                };
                let ids = hub.ids();
                for id in settings.cameras.keys().filter(|id| !ids.contains(id)) {
                    tracing::warn!(camera = %id, "settings for a camera this edge does not run; ignored");
                }
                for id in ids {
                    let want = settings.cameras.get(&id);
                    let version = want.map(|s| s.version).unwrap_or(0);
                    if sent.get(&id).copied().unwrap_or(0) == version {
                        continue;
                    }
                    let r = match want {
                        Some(s) => retune(&l, &http, s).await,
                        None => Retune {
                            version: 0,
                            person_threshold: None,
                            vehicle_threshold: None,
                            nms_iou: None,
                            model: ModelChange::Configured,
                            geometry: None,
                        },
                    };
                    tracing::info!(camera = %id, version, "camera settings from the centre");
                    if hub.send(&id, r).is_some() {
                        sent.insert(id, version);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !outage_logged {
                    tracing::warn!(error = %e, "settings: broker connection lost; retrying");
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

fn refuse_all(hub: &TuningHub, health: &Health, reason: &str, message: &str) {
    tracing::warn!(reason, "{message}");
    for source_id in hub.source_ids() {
        health.rejected(&source_id, "camera", reason, message);
    }
}
