//! Property-based fuzzing of the edge's parsers: raw base-station and gate records (CSV, JSON, JSON arrays,
//! NDJSON: `input::records`, as every input uses them) and the estimators they feed, the centre's commit
//! acknowledgements as the edge opens them (`Identity::open_ack`), the edge TOML (`EdgeConfig::load` from a temp
//! file, with its site, credential file, model manifest, camera calibration and drone telemetry), the drone
//! telemetry sidecar (`vision::drone::load_telemetry`, CSV and JSON) and the model manifest (`Manifest::find`).
//!
//! Each parser gets (a) arbitrary bytes and (b) structure-aware mutations of a valid document (characters
//! replaced, deleted, inserted; numbers swapped for NaN/huge/negative ones; strings swapped for hostile ones;
//! lines duplicated; truncation). Every property asserts that nothing panics and errors come back as values,
//! plus: one bad record never loses the good ones around it, an acknowledgement accepted from the centre carries
//! exactly what the centre signed, and what loads can be used.
//!
//! The default case counts keep this file within seconds in debug mode. `PROPTEST_CASES` overrides every count
//! in this file, for a longer run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release -p crowdgrid-edge --test fuzz
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use crowdgrid_edge::config::{EdgeConfig, SourceConfig};
use crowdgrid_edge::identity::Identity;
use crowdgrid_edge::input::records::{self, Format};
use crowdgrid_edge::source::base_station::{CellModel, CellRecord};
use crowdgrid_edge::source::gate::{GateRecord, GateState};
use crowdgrid_edge::source::{simulated, Estimator};
use crowdgrid_edge::vision::drone::{load_telemetry, zone_views};
use crowdgrid_edge::vision::manifest::Manifest;
use crowdgrid_proto::ack::{CommitAck, MAX_RANGE_SPAN};
use crowdgrid_proto::signed::{self, Credential};
use crowdgrid_proto::site::Site;
use proptest::prelude::*;
use proptest::sample::{select, Index};

// ---------------------------------------------------------------------------------------------------------------
// Configuration and fixtures.

use mutate::config;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

/// The West Taihu edge as shipped: its site, its base-station and gate sources.
struct WestTaihu {
    site: Site,
    edge_id: String,
    cells: crowdgrid_edge::config::BaseStationConfig,
    gates: crowdgrid_edge::config::GateConfig,
}

static WEST_TAIHU: LazyLock<WestTaihu> = LazyLock::new(|| {
    let loaded = EdgeConfig::load(&repo().join("config/west-taihu/edge.toml")).expect("shipped edge.toml loads");
    let mut cells = None;
    let mut gates = None;
    for s in &loaded.config.sources {
        match s {
            SourceConfig::BaseStation(c) => cells = Some(c.clone()),
            SourceConfig::Gate(c) => gates = Some(c.clone()),
            _ => {}
        }
    }
    WestTaihu {
        edge_id: loaded.config.edge.id.clone(),
        site: loaded.site,
        cells: cells.expect("a base-station source"),
        gates: gates.expect("a gate source"),
    }
});

/// The replay files' afternoon (their records are fresh then).
fn replay_now() -> DateTime<Utc> {
    "2025-10-03T05:45:00Z".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Structure-aware mutations of a valid document (shared by the workspace's fuzz files).

#[path = "../../proto/tests/support/mutate.rs"]
mod mutate;

// ---------------------------------------------------------------------------------------------------------------
// Raw records.

fn head(rel: &str, lines: usize) -> String {
    read(rel).lines().take(lines).map(|l| format!("{l}\n")).collect()
}

fn cell_csv() -> String {
    head("config/west-taihu/replay/cmcc-cells.csv", 25)
}

fn gate_csv() -> String {
    let all = read("config/west-taihu/replay/campground-gates.csv");
    let census = all.lines().find(|l| l.contains("census")).unwrap_or_default().to_string();
    format!("{}{census}\n", head("config/west-taihu/replay/campground-gates.csv", 40))
}

/// The same records as a JSON array, NDJSON and one object.
fn json_forms<T: serde::de::DeserializeOwned + serde::Serialize>(csv: &str) -> Vec<Vec<u8>> {
    let (recs, errors) = records::parse_csv::<T>(csv.as_bytes());
    assert!(errors.is_empty() && !recs.is_empty(), "{errors:?}");
    let lines: Vec<String> = recs.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    vec![
        serde_json::to_vec_pretty(&recs).unwrap(),
        lines.join("\n").into_bytes(),
        lines[0].clone().into_bytes(),
        format!("\u{feff}{}\r\n", lines.join("\r\n")).into_bytes(),
    ]
}

fn cell_docs() -> Vec<Vec<u8>> {
    let csv = cell_csv();
    let mut docs = json_forms::<CellRecord>(&csv);
    docs.push(csv.clone().into_bytes());
    docs.push(format!("\u{feff}{}", csv.replace('\n', "\r\n").replace(',', " , ")).into_bytes());
    docs
}

fn gate_docs() -> Vec<Vec<u8>> {
    let csv = gate_csv();
    let mut docs = json_forms::<GateRecord>(&csv);
    docs.push(csv.into_bytes());
    docs.push(b"ts,gate,direction\n2025-10-03T13:30:00+08:00,g1,exit\n2025-10-03T13:30:00+08:00,g1,entry\n".to_vec());
    docs
}

/// Every way a body is parsed (by content type, by file name, by format); returns the JSON and the CSV reading.
fn parse_all<T: serde::de::DeserializeOwned>(body: &[u8], content_type: Option<&str>) -> [(Vec<T>, Vec<String>); 2] {
    let auto = records::parse_auto::<T>(content_type, body);
    let json = records::parse_json::<T>(body);
    let csv = records::parse_csv::<T>(body);
    for name in ["x.csv", "x.json", "x.NDJSON", "x.jsonl", "x.txt", "x"] {
        let format = records::detect_path(Path::new(name), body);
        assert!(!name.ends_with(".csv") || format == Format::Csv);
        assert!(!name.ends_with(".json") || format == Format::Json);
    }
    let terminators = body.iter().filter(|b| **b == b'\n' || **b == b'\r').count();
    assert!(csv.0.len() + csv.1.len() <= terminators + 1, "more CSV records than lines");
    for (recs, errors) in [&auto, &json, &csv] {
        assert!(recs.len() + errors.len() <= body.len() + 1, "more records than bytes");
        assert!(errors.iter().all(|e| !e.is_empty()));
    }
    assert_eq!(
        auto.0.len() + auto.1.len(),
        match records::detect(content_type, body) {
            Format::Json => json.0.len() + json.1.len(),
            Format::Csv => csv.0.len() + csv.1.len(),
        }
    );
    [json, csv]
}

/// Records fed to the shipped estimators, at the replay's time and now: counted or rejected, never a panic.
fn feed_cells(recs: &[CellRecord]) {
    let w = &*WEST_TAIHU;
    let mut m = CellModel::new(&w.cells, &w.site, &w.edge_id).unwrap();
    for now in [replay_now(), Utc::now()] {
        for r in recs {
            if let Err(rej) = m.apply(r.clone(), now) {
                assert!(!rej.reason.is_empty());
            }
        }
        for r in m.readings(now) {
            serde_json::to_vec(&r).unwrap();
        }
    }
}

fn feed_gates(recs: &[GateRecord]) {
    let w = &*WEST_TAIHU;
    let mut g = GateState::new(&w.gates, &w.site, &w.edge_id).unwrap();
    for now in [replay_now(), Utc::now()] {
        for r in recs {
            if let Err(rej) = g.apply(r.clone(), now) {
                assert!(!rej.reason.is_empty());
            }
        }
        for r in g.readings(now) {
            serde_json::to_vec(&r).unwrap();
        }
    }
}

fn check_cells(body: &[u8], content_type: Option<&str>) {
    for (recs, _) in parse_all::<CellRecord>(body, content_type) {
        feed_cells(&recs);
    }
}

fn check_gates(body: &[u8], content_type: Option<&str>) {
    for (recs, _) in parse_all::<GateRecord>(body, content_type) {
        feed_gates(&recs);
    }
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(select(vec!["text/csv", "application/json", "TEXT/CSV; charset=utf-8", "", "csv"]))
}

prop_compose! {
    /// Records whose text forms are exact (whole seconds, whole devices, plain cell ids).
    fn cell_records()(v in proptest::collection::vec((0i64..3600, "[0-9A-Za-z-]{1,16}", 0u32..1_000_000), 0..12))
        -> Vec<CellRecord>
    {
        v.into_iter()
            .map(|(s, cell, devices)| CellRecord {
                ts: replay_now() + chrono::Duration::seconds(s),
                cell,
                devices: f64::from(devices),
            })
            .collect()
    }
}

/// `lines` with each `(index, garbage)` inserted before that line.
fn interleave(lines: Vec<String>, garbage: &[(Index, &str)]) -> Vec<String> {
    let mut out = lines;
    for (at, g) in garbage {
        let k = at.index(out.len() + 1);
        out.insert(k, g.to_string());
    }
    out
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn cell_records_arbitrary_bytes(body in mutate::bytes(b"ts,cell,devices\n"), ct in content_type()) {
        check_cells(&body, ct);
    }

    #[test]
    fn cell_records_mutated(body in mutate::mutated(cell_docs()), ct in content_type()) {
        check_cells(&body, ct);
    }

    #[test]
    fn gate_records_arbitrary_bytes(body in mutate::bytes(b"ts,gate,direction,count\n"), ct in content_type()) {
        check_gates(&body, ct);
    }

    #[test]
    fn gate_records_mutated(body in mutate::mutated(gate_docs()), ct in content_type()) {
        check_gates(&body, ct);
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// One bad record never loses the good ones around it (CSV, NDJSON and JSON arrays), and good records come
    /// back exactly.
    #[test]
    fn bad_records_never_lose_good_ones(
        recs in cell_records(),
        csv_bad in proptest::collection::vec((any::<Index>(), select(vec![
            "x", "a,b", "1,2,3,4", ",,", "2025-13-03T13:30:00+08:00,c,1", "2025-10-03T13:30:00+08:00,c,lots",
            "2025-10-03T13:30:00,c,1", "\u{0}", "ts,cell,devices",
        ])), 0..4),
        json_bad in proptest::collection::vec((any::<Index>(), select(vec![
            "{oops", "[1,2", "{\"ts\":1}", "null", "42", "\"x\"", "{}", "{\"cell\":\"c\",\"devices\":1}",
            "{\"ts\":\"2025-10-03T13:30:00Z\",\"cell\":7,\"devices\":1}",
        ])), 0..4),
    ) {
        let rows: Vec<String> = recs.iter().map(|r| format!("{},{},{}", r.ts.to_rfc3339(), r.cell, r.devices)).collect();
        let csv = format!("ts,cell,devices\n{}\n", interleave(rows, &csv_bad).join("\n"));
        let (got, errors) = records::parse_csv::<CellRecord>(csv.as_bytes());
        prop_assert_eq!(&got, &recs, "{}", csv);
        prop_assert_eq!(errors.len(), csv_bad.len(), "{}", csv);

        let lines: Vec<String> = recs.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
        let ndjson = interleave(lines.clone(), &json_bad).join("\n");
        let (got, errors) = records::parse_json::<CellRecord>(ndjson.as_bytes());
        prop_assert_eq!(&got, &recs, "{}", ndjson);
        prop_assert_eq!(errors.len(), json_bad.len(), "{}", ndjson);

        let values: Vec<&str> = vec!["{}", "1", "null", "\"x\"", "[]", "{\"ts\":\"bad\",\"cell\":\"c\",\"devices\":1}"];
        let bad: Vec<(Index, &str)> = json_bad.iter().map(|(i, _)| (*i, values[i.index(values.len())])).collect();
        let array = format!("[{}]", interleave(lines, &bad).join(","));
        let (got, errors) = records::parse_auto::<CellRecord>(None, array.as_bytes());
        prop_assert_eq!(&got, &recs, "{}", array);
        prop_assert_eq!(errors.len(), bad.len(), "{}", array);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Commit acknowledgements as the edge opens them.

const ACK_TOPIC: &str = "crowdgrid/v1/west-taihu/edge/west-taihu-edge-1/ack";

fn credential() -> Credential {
    Credential::parse(&format!("2.{}", "1f".repeat(32))).unwrap()
}

fn identity(with_credential: bool) -> Identity {
    Identity {
        site: "west-taihu".into(),
        edge: "west-taihu-edge-1".into(),
        credential: with_credential.then(credential),
    }
}

fn ack_docs() -> Vec<Vec<u8>> {
    let items =
        [("west-taihu-edge-1/sim", 1, 5), ("west-taihu-edge-1/sim", 1, 6), ("west-taihu-edge-1/cmcc-cells", 1, 1)];
    vec![
        serde_json::to_vec(&CommitAck::from_triples(items)).unwrap(),
        br#"{"committed":[{"source_id":"x","epoch":0,"ranges":[[5,1],[0,18446744073709551615],[7,7]]}]}"#.to_vec(),
        br#"{"committed":[{"source_id":"e/a","epoch":1776000000000,"ranges":[[0,999999],[1000001,1000001]]}]}"#
            .to_vec(),
    ]
}

/// `triples()` is walked lazily and within the documented bound.
fn check_ack(ack: &CommitAck) {
    let ranges: u128 = ack.committed.iter().map(|c| c.ranges.len() as u128).sum();
    let walked = ack.triples().take(10_000).count() as u128;
    assert!(walked <= ranges * u128::from(MAX_RANGE_SPAN));
}

fn open_all(payload: &[u8]) -> [Result<CommitAck, &'static str>; 2] {
    let out = [identity(true).open_ack(ACK_TOPIC, payload), identity(false).open_ack(ACK_TOPIC, payload)];
    for r in &out {
        match r {
            Ok(ack) => check_ack(ack),
            Err(reason) => {
                assert!(["ack_bad_signature", "ack_unsigned", "ack_unverifiable", "ack_malformed"].contains(reason))
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn open_ack_arbitrary_bytes(payload in mutate::bytes(signed::MAGIC)) {
        let [with, _] = open_all(&payload);
        prop_assert!(with.is_err() || signed::open(&payload).ok().flatten().is_some(), "unsigned ack accepted");
    }

    /// A centre-signed acknowledgement, then changed: accepted only with exactly the body the centre signed.
    #[test]
    fn open_ack_sealed_then_mutated(body in select(ack_docs()), edits in mutate::edits()) {
        let sealed = signed::seal(&credential(), signed::CENTRE, ACK_TOPIC, &body);
        let payload = mutate::apply(&sealed, &edits);
        let [with, without] = open_all(&payload);
        if with.is_ok() {
            let frame = signed::open(&payload).unwrap().unwrap();
            prop_assert_eq!(frame.body, &body[..], "a changed acknowledgement was accepted");
            prop_assert_eq!(frame.header.edge.as_str(), signed::CENTRE);
        }
        if signed::open(&payload).ok().flatten().is_some() {
            prop_assert_eq!(without, Err("ack_unverifiable"));
        }
    }

    /// A garbled body the centre really signed: refused as malformed (or accepted if it still parses); signed by
    /// anyone but the centre: refused.
    #[test]
    fn open_ack_mutated_then_sealed(body in mutate::mutated(ack_docs())) {
        let parses = serde_json::from_slice::<CommitAck>(&body).ok();
        let [with, _] = open_all(&signed::seal(&credential(), signed::CENTRE, ACK_TOPIC, &body));
        prop_assert_eq!(with.ok(), parses);
        let [by_edge, _] = open_all(&signed::seal(&credential(), "west-taihu-edge-1", ACK_TOPIC, &body));
        prop_assert_eq!(by_edge, Err("ack_bad_signature"));
        let [_, plain] = open_all(&body);
        if !body.starts_with(signed::MAGIC) {
            prop_assert_eq!(plain.ok(), serde_json::from_slice::<CommitAck>(&body).ok());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Edge TOML, with everything it loads.

/// A shipped edge file with every path made absolute (so the file can live in a temp dir; the queue stays
/// relative and is never opened by `load`).
fn absolute_paths(text: &str, site_dir: &str) -> String {
    let root = repo();
    let root = root.display();
    text.replace("site = \"site.toml\"", &format!("site = \"{root}/config/{site_dir}/site.toml\""))
        .replace("\"../../models/", &format!("\"{root}/models/"))
        .replace("\"../../.cache/", &format!("\"{root}/.cache/"))
        .replace("\"replay/", &format!("\"{root}/config/{site_dir}/replay/"))
        .replace("\"drone/", &format!("\"{root}/config/{site_dir}/drone/"))
        .replace("model = { name", &format!("model = {{ manifest = \"{root}/models/manifest.toml\", name"))
}

/// Every input kind, a credential file, and the MQTT keys the shipped files leave at their defaults.
fn all_inputs() -> String {
    r#"[edge]
id = "west-taihu-edge-9"
site = "site.toml"

[mqtt]
host = "127.0.0.1"
port = 1884
client_id = "e9"
topic_prefix = "crowdgrid/v1"
keep_alive_s = 10
status_interval_s = 10
max_backoff_s = 5
credential_file = "edge.cred"
delete_on = "commit"
commit_timeout_s = 10

[queue]
path = "q.db"
max_bytes = 268435456
overflow = "drop_oldest"
inflight = 100

[fusion]
interval_ms = 1000
stale_after_s = 300

[[sources]]
type = "base_station"
id = "cells-http"
operator = "China Mobile"
market_share = 0.6
devices_per_person = 1.05
stale_after_s = 900
confidence = 0.6
report_interval_ms = 2000
input = { kind = "http", url = "http://127.0.0.1:9/cells", interval_s = 60, timeout_s = 10 }
cells = [{ cell = "c1", zones = { beach = 0.8, jetty = 0.1 } }]

[[sources]]
type = "base_station"
id = "cells-tail"
market_share = 1.0
input = { kind = "csv_tail", path = "cells.csv", interval_ms = 1000 }
cells = [{ cell = "c2", zones = { car-park = 1.0 } }]

[[sources]]
type = "gate"
id = "gates-hook"
zone = "campground-north"
confidence = 0.9
daily_reset = "04:00"
max_occupancy = 75000
stale_after_s = 900
report_interval_ms = 2000
input = { kind = "webhook", listen = "127.0.0.1:0", path = "/events" }

[[sources]]
type = "gate"
id = "gates-mqtt"
zone = "beach"
input = { kind = "mqtt", host = "127.0.0.1", port = 1883, topic = "gates/#" }

[[sources]]
type = "gate"
id = "gates-drop"
zone = "jetty"
input = { kind = "file_drop", dir = "drop", interval_ms = 1000 }

[[sources]]
type = "simulated"
id = "sim"
interval_ms = 1000
time_scale = 60.0
start_local = "13:40"
start_date = "2026-03-10"
holiday = true
seed = 7
confidence = 0.5
zones = [{ zone = "beach", profile = "flat", base = 0.3, peak = 4.5, noise = 0.05 }]
"#
    .to_string()
}

fn edge_docs() -> Vec<Vec<u8>> {
    vec![
        absolute_paths(&read("config/west-taihu/edge.toml"), "west-taihu").into_bytes(),
        absolute_paths(&read("config/boai-school/edge.toml"), "boai-school").into_bytes(),
        absolute_paths(&read("config/boai-school/edge-camera.toml"), "boai-school").into_bytes(),
        absolute_paths(&read("config/west-taihu/edge-drone.toml"), "west-taihu").into_bytes(),
        absolute_paths(&all_inputs(), "west-taihu").into_bytes(),
    ]
}

fn credential_texts() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(format!("{}\n", credential().secret).into_bytes()),
        1 => mutate::mutated(vec![format!("{}\n", credential().secret).into_bytes()]),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

/// Loads `doc` as an edge file from a temp dir (with `cred` as its credential file): an error comes back as a
/// value, and what loads can build its sources.
fn check_edge(doc: &[u8], cred: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    temp_file(dir.path(), "edge.cred", cred);
    let path = temp_file(dir.path(), "edge.toml", doc);
    let loaded = match EdgeConfig::load(&path) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let edge = &loaded.config.edge.id;
    for s in &loaded.config.sources {
        match s {
            SourceConfig::BaseStation(c) => {
                let _ = CellModel::new(c, &loaded.site, edge);
            }
            SourceConfig::Gate(c) => {
                let _ = GateState::new(c, &loaded.site, edge);
            }
            SourceConfig::Simulated(c) => {
                let _ = simulated::start_local(c, &loaded.site, Utc::now());
            }
            SourceConfig::Camera(_) | SourceConfig::Drone(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn edge_toml_mutated(doc in mutate::mutated(edge_docs()), cred in credential_texts()) {
        check_edge(&doc, &cred);
    }

    #[test]
    fn edge_toml_arbitrary_bytes(doc in mutate::bytes(b"[edge]\nid = \"e\"\nsite = \"s.toml\"\n"), cred in credential_texts()) {
        check_edge(&doc, &cred);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Drone telemetry sidecar and model manifest.

fn telemetry_docs() -> Vec<Vec<u8>> {
    let csv = read("config/west-taihu/drone/patrol-telemetry.csv");
    let recs = load_telemetry(&repo().join("config/west-taihu/drone/patrol-telemetry.csv")).unwrap();
    let json: Vec<String> = recs
        .iter()
        .map(|r| {
            format!(
                r#"{{"frame":{},"lat":{:?},"lon":{:?},"alt_m":{:?},"heading_deg":{:?},"hfov_deg":{:?},"vfov_deg":{:?}}}"#,
                r.frame, r.lat, r.lon, r.alt_m, r.heading_deg, r.hfov_deg, r.vfov_deg
            )
        })
        .collect();
    vec![csv.into_bytes(), format!("[{}]", json.join(",\n")).into_bytes()]
}

static SHIPPED_TELEMETRY: LazyLock<Vec<crowdgrid_edge::vision::drone::Telemetry>> = LazyLock::new(|| {
    load_telemetry(&repo().join("config/west-taihu/drone/patrol-telemetry.csv")).expect("shipped telemetry loads")
});

/// Loads a sidecar from a temp file; what loads is plausible, sorted, and can be put over the site's zones
/// (except for a non-finite heading or longitude: `load_telemetry` accepts them, and `zone_views` then panics).
fn check_telemetry(doc: &[u8], json: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), if json { "t.json" } else { "t.csv" }, doc);
    let recs = match load_telemetry(&path) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(!recs.is_empty());
    assert!(recs.windows(2).all(|w| w[0].frame <= w[1].frame));
    let fov = |f: f64| f.is_finite() && (1.0..=170.0).contains(&f);
    for r in &recs {
        assert!(r.alt_m.is_finite() && r.alt_m > 0.0 && fov(r.hfov_deg) && fov(r.vfov_deg) && r.lat.abs() < 89.0);
    }
    let zones: Vec<(&str, &geo::Polygon<f64>)> =
        WEST_TAIHU.site.zones.iter().map(|z| (z.config.id.as_str(), &z.polygon)).collect();
    // Only records the mutation changed (the shipped ones are covered by the unit tests), at most three.
    let shipped = &*SHIPPED_TELEMETRY;
    for r in recs.iter().filter(|r| !shipped.contains(r)).take(3) {
        assert!(r.heading_deg.is_finite() && r.lon.is_finite(), "telemetry with a NaN loaded: {r:?}");
        for v in zone_views(r, 1920.0, 1080.0, &[], zones.iter().copied(), 20.0) {
            assert!(v.seen_m2 >= 20.0 && v.person == 0.0 && v.vehicle == 0.0);
        }
    }
}

fn check_manifest(doc: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "manifest.toml", doc);
    for name in ["nanodet-g-coco", "ssdlite-mnv2-person"] {
        if let Err(e) = Manifest::find(&path, name) {
            assert!(!e.to_string().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn telemetry_mutated(doc in mutate::mutated(telemetry_docs()), json in any::<bool>()) {
        check_telemetry(&doc, json);
    }

    #[test]
    fn telemetry_arbitrary_bytes(
        doc in mutate::bytes(b"frame,lat,lon,alt_m,heading_deg,hfov_deg,vfov_deg\n0,"),
        json in any::<bool>(),
    ) {
        check_telemetry(&doc, json);
    }

    #[test]
    fn manifest_mutated(doc in mutate::mutated(vec![read("models/manifest.toml").into_bytes()])) {
        check_manifest(&doc);
    }

    #[test]
    fn manifest_arbitrary_bytes(doc in mutate::bytes(b"[[models]]\nname = \"nanodet-g-coco\"\n")) {
        check_manifest(&doc);
    }
}

#[test]
fn the_seed_documents_are_valid() {
    // Mutations start from valid documents: make sure they are.
    for doc in cell_docs() {
        let (recs, errors) = records::parse_auto::<CellRecord>(None, &doc);
        assert!(errors.is_empty() && !recs.is_empty(), "{errors:?}");
    }
    for doc in gate_docs() {
        let (recs, errors) = records::parse_auto::<GateRecord>(None, &doc);
        assert!(errors.is_empty() && !recs.is_empty(), "{errors:?}");
    }
    for doc in ack_docs() {
        let sealed = signed::seal(&credential(), signed::CENTRE, ACK_TOPIC, &doc);
        identity(true).open_ack(ACK_TOPIC, &sealed).unwrap();
    }
    let cred = format!("{}\n", credential().secret).into_bytes();
    for doc in edge_docs() {
        let dir = tempfile::tempdir().unwrap();
        temp_file(dir.path(), "edge.cred", &cred);
        let path = temp_file(dir.path(), "edge.toml", &doc);
        EdgeConfig::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&doc)));
    }
    for (i, doc) in telemetry_docs().into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        load_telemetry(&temp_file(dir.path(), if i == 1 { "t.json" } else { "t.csv" }, &doc)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    Manifest::find(&temp_file(dir.path(), "manifest.toml", read("models/manifest.toml").as_bytes()), "nanodet-g-coco")
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// Regressions found by the properties above (fixed; kept so they stay fixed).

/// Found by `telemetry_mutated`: `load_telemetry` checks altitude, fields of view and latitude but not the heading
/// (nor the longitude), so a NaN or infinite heading loads; the footprint is then NaN and the zone intersection
/// (geo's boolean ops) panics in a debug build: "You are trying to convert a point[NaN, NaN] which is out of rect".
/// The same with `lon` = NaN.
#[test]
fn regression_telemetry_nan_heading() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "frame,lat,lon,alt_m,heading_deg,hfov_deg,vfov_deg\n0,31.7009,119.8528,60,NaN,84,53\n";
    let path = temp_file(dir.path(), "t.csv", csv.as_bytes());
    let recs = match load_telemetry(&path) {
        Ok(recs) => recs,
        Err(_) => return, // refused at load: fixed
    };
    let zones = WEST_TAIHU.site.zones.iter().map(|z| (z.config.id.as_str(), &z.polygon));
    let _ = zone_views(&recs[0], 1920.0, 1080.0, &[], zones, 20.0);
}
