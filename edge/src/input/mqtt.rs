//! MQTT input: subscribe to a topic (QoS 1); each payload is one JSON or CSV document.
//!
//! The event loop is polled in this task; the subscription is renewed on every ConnAck (so it
//! survives broker restarts and clean sessions), and errors back off for a second before retrying.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{deliver, records, sleep_or_cancel, Batch, InputContext, Record};

/// Largest accepted payload.
const MAX_PAYLOAD: usize = 1024 * 1024;

/// Starts a subscriber on `host:port` (defaults: the edge's `[mqtt]` broker) for `topic`.
pub fn spawn<T: Record>(
    host: Option<String>,
    port: Option<u16>,
    topic: String,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> JoinHandle<()> {
    let same_broker = host.is_none() && port.is_none();
    let host = host.unwrap_or_else(|| cx.mqtt.host.clone());
    let port = port.unwrap_or(cx.mqtt.port);
    let client_id = format!("{}-input", cx.source_id.replace('/', "-"));
    let mut opts = MqttOptions::new(client_id, host.clone(), port);
    opts.set_keep_alive(Duration::from_secs(cx.mqtt.keep_alive_s.max(5)));
    opts.set_max_packet_size(MAX_PAYLOAD + 1024, 64 * 1024);
    if same_broker {
        // Credentials are only sent to the edge's own broker, never to another host.
        let edge = crate::input::edge_of(&cx.source_id);
        crate::identity::Identity::new(&cx.site, edge, &cx.mqtt).login(&mut opts, &cx.mqtt);
    }
    tokio::spawn(run(opts, host, port, topic, cx, tx))
}

async fn run<T: Record>(
    opts: MqttOptions,
    host: String,
    port: u16,
    topic: String,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) {
    tracing::info!(source = %cx.source_id, host = %host, port, topic = %topic, "mqtt input subscribing");
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    loop {
        let event = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(source = %cx.source_id, topic = %topic, "mqtt input connected");
                // try_subscribe: awaiting here could block on the request channel this loop drains.
                if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                    cx.error(&format!("subscribe {topic}: {e}"));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let (recs, errors) = records::parse_auto::<T>(None, &p.payload);
                if !deliver(&tx, recs, errors).await {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                cx.error(&format!("mqtt {host}:{port}: {e}"));
                if !sleep_or_cancel(Duration::from_secs(1), &cx.shutdown).await {
                    break;
                }
            }
        }
    }
    // Best effort: tell the broker we are leaving (the request is flushed by one more poll).
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }
    tracing::debug!(source = %cx.source_id, "mqtt input stopped");
}
