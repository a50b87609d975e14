//! TLS end to end: the embedded broker speaks MQTT over TLS and the API HTTPS with the centre's certificate (a
//! self-signed one here, as `crowdgrid tls-selfsigned` writes); a signed edge trusting that certificate delivers
//! readings; plain-text clients get nowhere; `check-config` refuses a non-loopback listener without TLS.

mod common;

use std::time::Duration;

use common::*;
use crowdgrid::auth::edge_credentials::{Authentication, EdgeCredentials};
use crowdgrid::central::config::{BrokerConfig, CentralConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTPS trusting `trust`; the whole response as text.
async fn https_get(addr: std::net::SocketAddr, trust: &std::path::Path, path: &str) -> std::io::Result<String> {
    let config = crowdgrid_edge::tls::client_config(trust).map_err(std::io::Error::other)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?.to_owned();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_api_speak_tls_and_a_signed_edge_delivers_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = crowdgrid::central::tls::write_self_signed(&dir.path().join("tls"), &[]).unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.edges.authentication = Authentication::Required;
    loaded.config.tls = Some(tls.clone());
    let db = loaded.config.store.path.clone();
    let cred = EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db))
        .unwrap()
        .create("west-taihu", "edge-tls")
        .await
        .unwrap();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let port = central.mqtt.1;

    // HTTPS answers; plain HTTP on the same port does not.
    let ok = https_get(central.api_addr, &tls.cert, "/healthz").await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    assert!(plain.get(format!("http://{}/healthz", central.api_addr)).send().await.is_err(), "no plain HTTP");
    // A client that trusts another certificate is refused by its own TLS check.
    let other = crowdgrid::central::tls::write_self_signed(&dir.path().join("other"), &[]).unwrap();
    assert!(https_get(central.api_addr, &other.cert, "/healthz").await.is_err(), "wrong trust anchor");

    // A plain-TCP MQTT client gets no CONNACK.
    let mut o = MqttOptions::new("edge-tls-plain", "127.0.0.1", port);
    o.set_credentials("west-taihu/edge-tls", cred.secret.clone());
    let (_c, mut el) = AsyncClient::new(o, 10);
    let plain_mqtt = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert!(!matches!(plain_mqtt, Ok(true)), "plain MQTT must not get a CONNACK from the TLS broker");

    // A real edge with its credential and `tls_ca` delivers signed readings over TLS, acknowledged end to end.
    let path = edge_file(dir.path(), "edge-tls", port, "crowdgrid/v1", &simulated_source(100));
    std::fs::write(dir.path().join("edge-tls.cred"), format!("{}\n", cred.secret)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[mqtt]\n",
        &format!("[mqtt]\ncredential_file = \"edge-tls.cred\"\ntls_ca = \"{}\"\n", tls.cert.display()),
    );
    std::fs::write(&path, text).unwrap();
    let edge = load_edge(&path);
    assert!(edge.config.mqtt.tls.is_some());
    let agent = crowdgrid_edge::agent::Agent::start(edge).await.unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(20), "readings over TLS stored and acknowledged", || async {
        (m.readings_stored.get() > 20 && m.acks_sent.get() > 0).then_some(())
    })
    .await;
    agent.stop().await;
    assert_eq!(agent_queue_left(&dir.path().join("edge-tls.queue.db")), 0, "drained on stop");
    central.stop().await;
}

fn agent_queue_left(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row("SELECT COUNT(*) FROM msgs", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_listener_beyond_loopback_needs_authentication_and_tls() {
    let mut c = CentralConfig::load(&root().join("config/central.toml")).unwrap();
    c.config.broker = BrokerConfig::Embedded {
        listen: "0.0.0.0:1884".parse().unwrap(),
        max_payload_bytes: 1 << 20,
        topic_prefix: "crowdgrid/v1".into(),
    };
    c.config.api.listen = "0.0.0.0:8088".parse().unwrap();
    let mut p = crowdgrid_proto::Problems::new();
    c.config.validate(&mut p);
    let text = format!("{p:?}");
    assert!(text.contains("broker.listen") && text.contains("api.listen"), "{text}");
    // With TLS (and authentication, the default) both may listen there.
    let dir = tempfile::tempdir().unwrap();
    c.config.tls = Some(crowdgrid::central::tls::write_self_signed(dir.path(), &[]).unwrap());
    let mut p = crowdgrid_proto::Problems::new();
    c.config.validate(&mut p);
    assert!(p.is_empty(), "{p:?}");
    // Authentication off: the broker may not, even with TLS.
    c.config.edges.authentication = Authentication::Off;
    let mut p = crowdgrid_proto::Problems::new();
    c.config.validate(&mut p);
    assert!(format!("{p:?}").contains("broker.listen"));
}
