//! `crowdgrid broker-acl` against a real, private Mosquitto: with the generated `password_file` and `acl_file`,
//! anonymous clients are refused, an edge can publish only its own site's readings and subscribe to nothing of
//! anyone else's, a grid worker's phone reads its own ticket topic and no other, and a revoked edge is locked out
//! after regenerating the files and a SIGHUP.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use crowdgrid::auth::edge_credentials::EdgeCredentials;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Connects as `user`; `Err` if Mosquitto refuses. Incoming publishes go to the returned receiver.
async fn connect(
    port: u16,
    id: &str,
    login: Option<(&str, &str)>,
) -> Result<(AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>), String> {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (c, mut el) = AsyncClient::new(o, 100);
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK".to_string())?;
    first?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
        }
    });
    Ok((c, rx))
}

fn generate(config: &Path, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["broker-acl", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn start_mosquitto(dir: &Path, port: u16, mq: &Path) -> Child {
    let conf = dir.join("mosquitto.conf");
    // Run as whoever runs the test (as root, Mosquitto would otherwise switch to its own user and not read files
    // that are, rightly, owner-only).
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    std::fs::write(
        &conf,
        format!(
            "user {user}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence false\nlog_dest file {}\n",
            mq.join("password_file").display(),
            mq.join("acl_file").display(),
            dir.join("mosquitto.log").display()
        ),
    )
    .unwrap();
    Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (installed by scripts/setup.sh --test)")
}

/// Receives what arrives within `wait` after a marker message proves the broker has passed that point.
async fn drain(rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>, marker: &str) -> Vec<String> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some((t, payload)) = rx.recv().await {
            if t == marker && payload == b"marker" {
                return;
            }
            got.push(t);
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_password_and_acl_files_scope_every_account() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "sites = [\"{}\", \"{}\"]\n[store]\npath = \"{}\"\n",
            root().join("config/west-taihu/site.toml").display(),
            root().join("config/boai-school/site.toml").display(),
            dir.path().join("central.db").display()
        ),
    )
    .unwrap();
    let creds = EdgeCredentials::open(&dir.path().join("central.db"), &dir.path().join("edge-master.key")).unwrap();
    let a = creds.create("west-taihu", "edge-a").await.unwrap();
    let mq = dir.path().join("mq");
    generate(&config, &mq);
    let port = crowdgrid::central::broker::free_loopback_addr().unwrap().port();
    let mut broker = start_mosquitto(dir.path(), port, &mq);
    eventually(Duration::from_secs(10), "mosquitto listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;

    // Anonymous, and a right name with a wrong password: refused.
    assert!(connect(port, "anon", None).await.is_err());
    assert!(connect(port, "edge-a", Some(("west-taihu/edge-a", "1.nope"))).await.is_err());

    let centre_pw = creds.centre_password();
    let (centre, mut centre_rx) =
        connect(port, "crowdgrid-central", Some(("crowdgrid-central", &centre_pw))).await.unwrap();
    centre.subscribe("crowdgrid/v1/#", QoS::AtLeastOnce).await.unwrap();
    let (edge, mut edge_rx) = connect(port, "edge-a", Some(("west-taihu/edge-a", &a.secret))).await.unwrap();
    edge.subscribe("crowdgrid/v1/#", QoS::AtLeastOnce).await.unwrap();
    let liu_pw = std::fs::read_to_string(mq.join("workers/west-taihu.liu-fang.password")).unwrap();
    let (worker, mut worker_rx) =
        connect(port, "phone-liu", Some(("worker/west-taihu/liu-fang", liu_pw.trim()))).await.unwrap();
    worker.subscribe("crowdgrid/v1/west-taihu/workers/liu-fang/tickets", QoS::AtLeastOnce).await.unwrap();
    worker.subscribe("crowdgrid/v1/west-taihu/workers/wang-lei/tickets", QoS::AtLeastOnce).await.unwrap();
    worker.subscribe("crowdgrid/v1/#", QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // SUBACKs

    // The edge publishes its own site's reading (passes) and another site's (dropped by the ACL).
    edge.publish("crowdgrid/v1/west-taihu/beach/reading", QoS::AtLeastOnce, false, "own").await.unwrap();
    edge.publish("crowdgrid/v1/boai-school/gate-plaza/reading", QoS::AtLeastOnce, false, "foreign").await.unwrap();
    // The centre notifies two workers.
    for w in ["liu-fang", "wang-lei"] {
        centre
            .publish(format!("crowdgrid/v1/west-taihu/workers/{w}/tickets"), QoS::AtLeastOnce, false, w)
            .await
            .unwrap();
    }
    // A marker each account may read, published last: once it arrives, everything before it has been routed.
    let ack = "crowdgrid/v1/west-taihu/edge/edge-a/ack";
    centre.publish(ack, QoS::AtLeastOnce, false, "marker").await.unwrap();
    let centre_got = drain(&mut centre_rx, ack).await;
    assert!(centre_got.contains(&"crowdgrid/v1/west-taihu/beach/reading".to_string()), "{centre_got:?}");
    assert!(!centre_got.iter().any(|t| t.contains("boai-school")), "the foreign reading never reached anyone");
    let edge_got = drain(&mut edge_rx, ack).await;
    assert!(edge_got.is_empty(), "the edge read nothing but its own acknowledgements: {edge_got:?}");
    let liu = "crowdgrid/v1/west-taihu/workers/liu-fang/tickets";
    centre.publish(liu, QoS::AtLeastOnce, false, "marker").await.unwrap();
    let worker_got = drain(&mut worker_rx, liu).await;
    assert_eq!(worker_got, vec![liu.to_string()], "only the worker's own ticket topic");

    // Revoke, regenerate, reload: the edge cannot log in again.
    creds.revoke("west-taihu", "edge-a", None).await.unwrap();
    generate(&config, &mq);
    assert!(Command::new("kill").args(["-HUP", &broker.id().to_string()]).status().unwrap().success());
    eventually(Duration::from_secs(10), "the revoked edge refused", || async {
        connect(port, "edge-a-2", Some(("west-taihu/edge-a", &a.secret))).await.is_err().then_some(())
    })
    .await;
    broker.kill().unwrap();
    broker.wait().unwrap();
}
