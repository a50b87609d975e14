//! The InfluxDB v2 sink against a real server speaking its write API (Debian's VictoriaMetrics,
//! installed by scripts/setup.sh --test): points are buffered while the server is down, retried, and
//! read back with the values that went in.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid::central::config::InfluxConfig;
use crowdgrid_proto::{Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_vm(dir: &std::path::Path, port: u16) -> Vm {
    let bin = ["/usr/bin/victoria-metrics", "/usr/local/bin/victoria-metrics"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("victoria-metrics is not installed: run scripts/test.sh (it installs the Debian package)");
    let child = Command::new(bin)
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("victoria-metrics starts");
    Vm(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_sink_buffers_while_down_then_writes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let vm_port = crowdgrid::central::broker::free_loopback_addr().unwrap().port();
    let mut loaded = central_embedded(dir.path());
    loaded.config.influx = Some(InfluxConfig {
        url: format!("http://127.0.0.1:{vm_port}"),
        org: "changzhou".into(),
        bucket: "crowdgrid".into(),
        token: "unused".into(),
        measurement: "crowd".into(),
        batch_size: 10,
        flush_interval_ms: 100,
        max_buffered_points: 10_000,
    });
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();

    // 25 readings while the server is not running yet.
    let t0 = Utc::now() - chrono::Duration::seconds(30);
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("influx-{}", unique()), host, port), 100);
    let poller = tokio::spawn(async move {
        let mut acks = 0;
        while acks < 25 {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                acks += 1;
            }
        }
    });
    for i in 1..=25u64 {
        let ts = t0 + chrono::Duration::seconds(i as i64);
        let mut r = Reading::new("west-taihu", "jetty", SourceKind::Camera, "vm/cam", ts, 10.0 * i as f64, 1500.0, 0.9);
        r.seq = i;
        client
            .publish("crowdgrid/v1/west-taihu/jetty/reading", QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap())
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), poller).await.unwrap().unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(15), "failed writes while the server is down", || async {
        (m.influx_errors.get() >= 1 && m.influx_buffered.get() == 25).then_some(())
    })
    .await;
    assert_eq!(m.influx_written.get(), 0);

    let _vm = start_vm(dir.path(), vm_port);
    eventually(Duration::from_secs(60), "the buffered points to be written", || async {
        (m.influx_written.get() == 25).then_some(())
    })
    .await;
    assert_eq!(m.influx_buffered.get(), 0);
    assert_eq!(m.influx_dropped.get(), 0);

    // VictoriaMetrics names series measurement_field and keeps the tags as labels.
    let url =
        format!("http://127.0.0.1:{vm_port}/api/v1/export?match[]=crowd_count{{zone=\"jetty\",source_id=\"vm/cam\"}}");
    let body = eventually(Duration::from_secs(20), "the points in /api/v1/export", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        let n: usize = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["values"].as_array().map_or(0, |a| a.len()))
            .sum();
        (n == 25).then_some(text)
    })
    .await;
    let line: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(line["metric"]["site"], "west-taihu");
    assert_eq!(line["metric"]["source"], "camera");
    let values: Vec<f64> = line["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let expected: Vec<f64> = (1..=25).map(|i| 10.0 * i as f64).collect();
    assert_eq!(values, expected);
    let ts: Vec<i64> = line["timestamps"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ts[0], (t0 + chrono::Duration::seconds(1)).timestamp_millis());
    central.stop().await;
}
