//! Property-based fuzzing of the centre's parsers: `Validator::reading` (topic + JSON payload + checks against
//! the real site files), the per-message classifier of `central::ingest` (private, so rebuilt here from its
//! public parts in the same order: `Authenticator::check` → evidence `store::evidence::check` / `EdgeStatus`
//! JSON / `Validator::reading` + `authn::edge_of_source`), the evidence check on its own, the central TOML
//! (`CentralConfig::load` from a temp file, which also loads the site and rule files it names) and the rule TOML
//! (`rules::load`).
//!
//! Each parser gets (a) arbitrary bytes and (b) structure-aware mutations of a valid document (characters
//! replaced, deleted, inserted; numbers swapped for NaN/huge/negative ones; strings swapped for hostile ones;
//! lines duplicated; truncation). Every property asserts that nothing panics and that errors come back as
//! values with a known metric label, plus: a frame accepted as signed carries exactly the body that was signed,
//! and a configuration that loads can be used.
//!
//! The default case counts keep this file within seconds in debug mode. `PROPTEST_CASES` overrides every count
//! in this file, for a longer run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release -p crowdgrid --test fuzz
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, Utc};
use crowdgrid::auth::edge_credentials::{Authentication, EdgeCredentials, Registry};
use crowdgrid::central::authn::{self, Authenticator};
use crowdgrid::central::config::CentralConfig;
use crowdgrid::central::escalation;
use crowdgrid::central::validate::{Rejection, Validator};
use crowdgrid::store::evidence;
use crowdgrid_proto::reading::Limits;
use crowdgrid_proto::signed::{self, Credential};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{topic, EdgeStatus, Level, Reading, SourceKind};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------------------------------
// Configuration and fixtures.

use mutate::config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const PREFIX: &str = topic::PREFIX;
const EDGE: &str = "west-taihu-edge-1";
const CAMERA_EDGE: &str = "boai-school-cam-1";

/// The shipped sites, a validator over them, and authenticators over a registry holding one credential for
/// `west-taihu-edge-1` and one for `boai-school-cam-1`.
struct Centre {
    sites: Vec<Arc<Site>>,
    validator: Validator,
    required: Authenticator,
    off: Authenticator,
    cred: Credential,
    camera_cred: Credential,
    _dir: tempfile::TempDir,
}

static CENTRE: LazyLock<Centre> = LazyLock::new(|| {
    let sites: Vec<Arc<Site>> = ["config/west-taihu/site.toml", "config/boai-school/site.toml"]
        .iter()
        .map(|p| Arc::new(Site::load(&repo().join(p)).expect("shipped site loads")))
        .collect();
    let validator = Validator::new(PREFIX, &sites, Limits::default(), 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (registry, cred, camera_cred) = rt.block_on(async {
        let store = EdgeCredentials::open(&dir.path().join("c.db"), &dir.path().join("k")).unwrap();
        let cred = store.create("west-taihu", EDGE).await.unwrap();
        let camera_cred = store.create("boai-school", CAMERA_EDGE).await.unwrap();
        let registry = Registry::default();
        registry.reload(&store).await.unwrap();
        (registry, cred, camera_cred)
    });
    Centre {
        validator,
        required: Authenticator::new(registry.clone(), Authentication::Required, PREFIX),
        off: Authenticator::new(registry, Authentication::Off, PREFIX),
        sites,
        cred,
        camera_cred,
        _dir: dir,
    }
});

// ---------------------------------------------------------------------------------------------------------------
// Structure-aware mutations of a valid document (shared by the workspace's fuzz files).

#[path = "../proto/tests/support/mutate.rs"]
mod mutate;

// ---------------------------------------------------------------------------------------------------------------
// Messages.

/// A reading the centre accepts on `crowdgrid/v1/{site}/{zone}/reading` now.
fn reading(site: &str, zone: &str, source_id: &str) -> Reading {
    let mut r = Reading::new(site, zone, SourceKind::Camera, source_id, Utc::now(), 30.0, 600.0, 0.8);
    r.seq = 17;
    r.epoch = (Utc::now() - Duration::days(1)).timestamp_millis() as u64;
    r.classes = Some(crowdgrid_proto::ClassCounts { person: 30.0, vehicle: 2.0 });
    r.conflict = Some(1.0);
    r
}

fn reading_topic(site: &str, zone: &str) -> String {
    topic::reading(PREFIX, site, zone)
}

fn status(edge: &str, site: &str) -> Vec<u8> {
    serde_json::to_vec(&EdgeStatus::offline(edge, site)).unwrap()
}

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0xFF, 0xD9];

/// `(topic, body)` of valid messages of every kind from `west-taihu-edge-1` (and the Boai camera's evidence).
fn messages() -> Vec<(String, Vec<u8>)> {
    let json = |r: &Reading| serde_json::to_vec(r).unwrap();
    vec![
        (reading_topic("west-taihu", "beach"), json(&reading("west-taihu", "beach", &format!("{EDGE}/cam")))),
        (
            reading_topic("west-taihu", "jetty"),
            serde_json::to_vec_pretty(&reading("west-taihu", "jetty", &format!("{EDGE}/cells"))).unwrap(),
        ),
        (reading_topic("boai-school", "gate-plaza"), json(&reading("boai-school", "gate-plaza", "manual"))),
        (topic::edge_status(PREFIX, "west-taihu", EDGE), status(EDGE, "west-taihu")),
        (topic::evidence(PREFIX, "boai-school", "pickup-lane", 42), JPEG.to_vec()),
    ]
}

/// A topic the centre may be sent anything on.
fn any_topic() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            reading_topic("west-taihu", "beach"),
            reading_topic("west-taihu", "nope"),
            reading_topic("nowhere", "beach"),
            topic::edge_status(PREFIX, "west-taihu", EDGE),
            topic::edge_status(PREFIX, "west-taihu", "edge-2"),
            topic::evidence(PREFIX, "boai-school", "pickup-lane", 42),
            topic::edge_ack(PREFIX, "west-taihu", EDGE),
            "crowdgrid/v1".to_string(),
            "crowdgrid/v1/".to_string(),
            "crowdgrid/v1//beach/reading".to_string(),
            "crowdgrid/v1/west-taihu/evidence/beach/-9223372036854775808".to_string(),
            "crowdgrid/v1/west-taihu/evidence/beach/9223372036854775808".to_string(),
        ]),
        1 => "\\PC{0,60}",
        1 => "crowdgrid/v1(/[a-z0-9+#-]{0,12}){0,6}",
    ]
}

/// A rejection is a value with a metric label (a `&'static str`, so a closed set) in the metrics' own syntax.
fn assert_rejection(r: &Rejection) {
    let label_ok = !r.reason.is_empty() && r.reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    assert!(label_ok, "rejection label {:?} ({})", r.reason, r.detail);
}

/// A reading the validator passed is one it should have passed.
fn assert_valid_reading(r: &Reading, topic_name: &str, now: DateTime<Utc>) {
    let (site, zone) = topic::parse_reading(PREFIX, topic_name).expect("accepted on a reading topic");
    assert_eq!((r.site.as_str(), r.zone.as_str()), (site.as_str(), zone.as_str()));
    let s = CENTRE.sites.iter().find(|s| s.config.id == site).expect("a configured site");
    assert!(s.zone(&zone).is_some(), "a configured zone");
    r.check(now, &Limits::default()).expect("accepted readings pass the checks");
}

/// What a publish turned out to be.
#[derive(Debug)]
enum Classified {
    Evidence { edge: Option<String> },
    Status(EdgeStatus),
    Reading(Reading, Option<String>),
}

/// `central::ingest::classify` (private) rebuilt from the same public parts, in the same order.
fn classify(auth: &Authenticator, topic_name: &str, payload: &[u8]) -> Result<Classified, Rejection> {
    let reject = |reason: &'static str| Rejection { reason, detail: topic_name.to_string() };
    if payload.len() > evidence::MAX_BYTES + 1024 {
        return Err(reject("oversized"));
    }
    let who = auth.check(topic_name, payload)?;
    if topic::parse_evidence(PREFIX, topic_name).is_some() {
        evidence::check(who.body).map_err(reject)?;
        return Ok(Classified::Evidence { edge: who.edge });
    }
    if let Some((site, edge)) = topic::parse_edge_status(PREFIX, topic_name) {
        let status: EdgeStatus = serde_json::from_slice(who.body).map_err(|_| reject("status_malformed"))?;
        if status.site != site || status.edge_id != edge {
            return Err(reject("status_mismatch"));
        }
        if who.edge.as_deref().is_some_and(|signer| signer != edge) {
            return Err(reject("foreign_status"));
        }
        return Ok(Classified::Status(status));
    }
    let reading = CENTRE.validator.reading(topic_name, who.body, Utc::now())?;
    let owner = authn::edge_of_source(&reading.source_id).map(str::to_string);
    match who.edge {
        Some(signer) if owner.as_deref() != Some(signer.as_str()) => Err(reject("foreign_source")),
        Some(signer) => Ok(Classified::Reading(reading, Some(signer))),
        None => Ok(Classified::Reading(reading, owner)),
    }
}

/// Classifies with both authentication modes and checks what came out.
fn check_classified(topic_name: &str, payload: &[u8]) {
    for (auth, required) in [(&CENTRE.required, true), (&CENTRE.off, false)] {
        match classify(auth, topic_name, payload) {
            Err(r) => assert_rejection(&r),
            Ok(c) => {
                let signed = signed::open(payload).ok().flatten().is_some();
                assert!(signed || !required, "unsigned payload accepted with authentication required");
                match c {
                    Classified::Evidence { .. } => assert!(topic::parse_evidence(PREFIX, topic_name).is_some()),
                    Classified::Status(s) => {
                        let (site, edge) = topic::parse_edge_status(PREFIX, topic_name).unwrap();
                        assert_eq!((s.site, s.edge_id), (site, edge));
                    }
                    Classified::Reading(r, ack_to) => {
                        assert_valid_reading(&r, topic_name, Utc::now());
                        if let Some(e) = ack_to {
                            assert_eq!(authn::edge_of_source(&r.source_id), Some(e.as_str()));
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn validator_arbitrary(topic_name in any_topic(), payload in mutate::bytes(b"{\"site\":\"west-taihu\",")) {
        let now = Utc::now();
        match CENTRE.validator.reading(&topic_name, &payload, now) {
            Ok(r) => assert_valid_reading(&r, &topic_name, now),
            Err(e) => assert_rejection(&e),
        }
    }

    #[test]
    fn validator_mutated(
        (topic_name, body) in select(messages()).prop_filter("readings", |(t, _)| t.ends_with("/reading")),
        edits in mutate::edits(),
    ) {
        let now = Utc::now();
        let payload = mutate::apply(&body, &edits);
        match CENTRE.validator.reading(&topic_name, &payload, now) {
            Ok(r) => assert_valid_reading(&r, &topic_name, now),
            Err(e) => assert_rejection(&e),
        }
    }
}

proptest! {
    #![proptest_config(config(4000))]

    /// Anything on any topic, plain or in a frame that does not verify.
    #[test]
    fn classify_arbitrary(
        topic_name in any_topic(),
        payload in prop_oneof![
            mutate::bytes(signed::MAGIC),
            mutate::mutated(messages().into_iter().map(|(_, b)| b).collect()),
        ],
    ) {
        check_classified(&topic_name, &payload);
    }

    /// A sealed message of every kind, then mutated (a forger, or a broken link): whatever is accepted as signed
    /// carries exactly the body that was signed, on the topic it was signed for.
    #[test]
    fn classify_sealed_then_mutated(
        (topic_name, body) in select(messages()),
        camera in any::<bool>(),
        edits in mutate::edits(),
    ) {
        let (cred, edge) = if camera { (&CENTRE.camera_cred, CAMERA_EDGE) } else { (&CENTRE.cred, EDGE) };
        let sealed = signed::seal(cred, edge, &topic_name, &body);
        let payload = mutate::apply(&sealed, &edits);
        check_classified(&topic_name, &payload);
        if let Ok(who) = CENTRE.required.check(&topic_name, &payload) {
            prop_assert_eq!(who.body, &body[..], "a changed body passed as signed");
            prop_assert_eq!(who.edge.as_deref(), Some(edge));
        }
    }

    /// A signed edge sending garbage (or another edge's data) is refused by value, never trusted beyond its own.
    #[test]
    fn classify_mutated_then_sealed(
        (topic_name, body) in select(messages()),
        edits in mutate::edits(),
    ) {
        let payload = signed::seal(&CENTRE.cred, EDGE, &topic_name, &mutate::apply(&body, &edits));
        check_classified(&topic_name, &payload);
        match classify(&CENTRE.required, &topic_name, &payload) {
            Ok(Classified::Reading(r, ack_to)) => {
                prop_assert_eq!(authn::edge_of_source(&r.source_id), Some(EDGE));
                prop_assert_eq!(ack_to.as_deref(), Some(EDGE));
            }
            Ok(Classified::Status(s)) => prop_assert_eq!(s.edge_id, EDGE),
            Ok(Classified::Evidence { edge }) => prop_assert_eq!(edge.as_deref(), Some(EDGE)),
            Err(r) => assert_rejection(&r),
        }
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn evidence_check(
        jpeg in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| [&[0xFF, 0xD8, 0xFF][..], &b].concat()),
            (evidence::MAX_BYTES - 2..=evidence::MAX_BYTES + 2, any::<bool>()).prop_map(|(n, magic)| {
                let mut v = vec![0u8; n];
                if magic { v[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]); }
                v
            }),
        ],
    ) {
        let want = if jpeg.len() > evidence::MAX_BYTES {
            Err("evidence_oversized")
        } else if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Err("evidence_not_jpeg")
        } else {
            Ok(())
        };
        prop_assert_eq!(evidence::check(&jpeg), want);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Central and rule TOML.

/// `text` with the shipped relative site and rule paths made absolute (so the file can live in a temp dir).
fn absolute_paths(text: &str) -> String {
    let config = repo().join("config");
    let config = config.display();
    text.replace("\"west-taihu/", &format!("\"{config}/west-taihu/"))
        .replace("\"boai-school/", &format!("\"{config}/boai-school/"))
}

/// Every key of every section the central file has, so that mutations reach each value.
const FULL_CENTRAL: &str = r#"
[ingest]
max_payload_bytes = 65536
max_future_s = 300
max_age_s = 604800
max_density = 12.0
channel_capacity = 20000

[edges]
authentication = "off"
key_file = "k/edge-master.key"
refresh_s = 2

[api.limits]
max_connections = 1024
max_per_ip = 128
header_read_timeout_s = 10

[escalation]
reopen_window_s = 600
check_interval_ms = 1000
notice = { ack_s = 900, resolve_s = 3600, subdistrict_s = 7200 }
warning = { ack_s = 300, resolve_s = 1800, subdistrict_s = 3600 }
critical = { ack_s = 120, resolve_s = 900, subdistrict_s = 1800 }

[[notify.webhooks]]
name = "ops"
url = "https://example.invalid/hook"
secret = "0123456789abcdef0123"
max_attempts = 20
"#;

fn central_docs() -> Vec<Vec<u8>> {
    let base = read("config/central.toml");
    let full = base.replace("[rules]", &format!("{FULL_CENTRAL}\n[rules]\nfused_fresh_s = 120"));
    vec![
        absolute_paths(&base).into_bytes(),
        absolute_paths(&full).into_bytes(),
        absolute_paths(&read("config/central-production.toml")).into_bytes(),
    ]
}

fn rule_docs() -> Vec<Vec<u8>> {
    vec![read("config/west-taihu/rules.toml").into_bytes(), read("config/boai-school/rules.toml").into_bytes()]
}

fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

/// True if `s` seconds is a chrono duration that can be added to now (and a year more).
fn usable_seconds(s: i64) -> bool {
    let now = Utc::now();
    Duration::try_seconds(s)
        .and_then(|d| now.checked_add_signed(d))
        .and_then(|t| t.checked_add_signed(Duration::days(366)))
        .and_then(|t| t.checked_sub_signed(Duration::days(366)))
        .is_some()
}

/// Second counts chrono cannot hold or add to "now" (found by these properties, see the `regression_central_*`
/// tests): validation must refuse them, since the centre would panic where it uses them.
fn unusable_seconds(c: &CentralConfig) -> Vec<(&'static str, i64)> {
    let e = &c.escalation;
    let mut all = vec![
        ("ingest.max_future_s", c.ingest.max_future_s),
        ("ingest.max_age_s", c.ingest.max_age_s),
        ("rules.clear_for_s", c.rules.clear_for_s),
        ("rules.fused_fresh_s", c.rules.fused_fresh_s),
        ("escalation.reopen_window_s", e.reopen_window_s),
    ];
    for sla in [e.notice, e.warning, e.critical] {
        all.extend([("escalation.ack_s", sla.ack_s), ("escalation.resolve_s", sla.resolve_s)]);
        all.push(("escalation.subdistrict_s", sla.subdistrict_s));
    }
    all.retain(|(_, s)| !usable_seconds(*s));
    all
}

/// A configuration that loads can be used: the validator built from it judges a reading, and tickets get
/// deadlines.
fn check_central(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "central.toml", bytes);
    let loaded = match CentralConfig::load(&path) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let c = &loaded.config;
    assert!(unusable_seconds(c).is_empty(), "loaded with unusable second counts: {:?}", unusable_seconds(c));
    let now = Utc::now();
    let validator =
        Validator::new(c.broker.topic_prefix(), &loaded.sites, c.ingest.limits(), c.ingest.max_payload_bytes);
    for site in &loaded.sites {
        for zone in site.zones.iter().take(1) {
            let r = reading(&site.config.id, &zone.config.id, "e/s");
            let t = topic::reading(c.broker.topic_prefix(), &site.config.id, &zone.config.id);
            let _ = validator.reading(&t, &serde_json::to_vec(&r).unwrap(), now);
        }
    }
    for level in [Level::Notice, Level::Warning, Level::Critical] {
        for audience in ["grid_worker", "engineer"] {
            let _ = escalation::deadlines(&c.escalation, audience, level, now);
        }
    }
}

/// A rule's second counts beyond chrono's range (found by these properties, see `regression_rules_huge_for_s`):
/// `rules::load` must refuse them rather than panic.
fn has_unusable_seconds(doc: &[u8]) -> bool {
    fn walk(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| match v {
                toml::Value::Integer(s) if k.ends_with("_s") => !usable_seconds(*s),
                _ => walk(v),
            }),
            toml::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    std::str::from_utf8(doc).ok().and_then(|t| toml::from_str::<toml::Value>(t).ok()).is_some_and(|v| walk(&v))
}

fn check_rules(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "rules.toml", bytes);
    match crowdgrid::rules::load(&[path], &CENTRE.sites) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(_) => assert!(!has_unusable_seconds(bytes), "a rule file with unusable second counts loaded"),
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn central_toml_mutated(doc in mutate::mutated(central_docs())) {
        check_central(&doc);
    }

    #[test]
    fn central_toml_arbitrary_bytes(bytes in mutate::bytes(b"sites = []\n[store]\npath = \"x\"\n")) {
        check_central(&bytes);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn rules_toml_mutated(doc in mutate::mutated(rule_docs())) {
        check_rules(&doc);
    }

    #[test]
    fn rules_toml_arbitrary_bytes(bytes in mutate::bytes(b"site = \"west-taihu\"\n[[rule]]\n")) {
        check_rules(&bytes);
    }
}

#[test]
fn the_seed_documents_are_valid() {
    // Mutations start from valid documents: make sure they are.
    for (t, body) in messages() {
        let sealed = if t.contains("boai-school") {
            signed::seal(&CENTRE.camera_cred, CAMERA_EDGE, &t, &body)
        } else {
            signed::seal(&CENTRE.cred, EDGE, &t, &body)
        };
        let c = classify(&CENTRE.required, &t, &sealed);
        match (&c, t.contains("boai-school") && t.ends_with("/reading")) {
            // Source `manual` belongs to no edge: refused when signed.
            (Err(r), true) => assert_eq!(r.reason, "foreign_source"),
            (c, _) => assert!(c.is_ok(), "{t}: {c:?}"),
        }
    }
    for doc in central_docs() {
        let dir = tempfile::tempdir().unwrap();
        CentralConfig::load(&temp_file(dir.path(), "central.toml", &doc)).unwrap();
    }
    for doc in rule_docs() {
        let dir = tempfile::tempdir().unwrap();
        crowdgrid::rules::load(&[temp_file(dir.path(), "rules.toml", &doc)], &CENTRE.sites).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Regressions found by the properties above (fixed; kept so they stay fixed).

/// The file is refused with the field named (before the fix it loaded, then panicked where the value was used).
fn refused(extra: &str, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n{extra}\n", absolute_paths(&read("config/central.toml")));
    match CentralConfig::load(&temp_file(dir.path(), "central.toml", text.as_bytes())) {
        Ok(_) => panic!("{extra:?} loaded"),
        Err(e) => assert!(e.to_string().contains(field), "{e}"),
    }
}

/// Found by `central_toml_mutated`: the file loaded, then `IngestConfig::limits` panicked (called at start).
#[test]
fn regression_central_huge_max_future_s() {
    refused("[ingest]\nmax_future_s = 9223372036854775807", "ingest.max_future_s");
}

/// Found by `central_toml_mutated`: the file loaded and `limits()` worked, then every reading panicked in
/// `Reading::check` (`now + limits.max_future` overflowed; it is also computed with a checked add now).
#[test]
fn regression_central_max_future_s_overflows_reading_check() {
    refused("[ingest]\nmax_future_s = 9000000000000", "ingest.max_future_s");
    let limits = crowdgrid_proto::reading::Limits {
        max_future: chrono::Duration::seconds(9_000_000_000_000),
        ..Default::default()
    };
    let r = reading("west-taihu", "beach", "e/s");
    assert!(r.check(Utc::now(), &limits).is_ok(), "no overflow even with limits nobody can configure");
}

/// Found by `central_toml_mutated`: the file loaded, then the first ticket's deadlines panicked.
#[test]
fn regression_central_huge_sla() {
    refused(
        "[escalation]\nwarning = { ack_s = 9223372036854775807, resolve_s = 9223372036854775807, subdistrict_s = 3600 }",
        "escalation.warning.ack_s",
    );
}

/// Found by `rules_toml_mutated`: `rules::load` itself panics on a huge `for_s` (or `clear_for_s`, `cooldown_s`,
/// and also on a hugely negative one, which validation reports as negative only after the panic point).
#[test]
fn regression_rules_huge_for_s() {
    let dir = tempfile::tempdir().unwrap();
    let text = "site = \"west-taihu\"\n[[rule]]\nid = \"density\"\nmetric = \"density\"\nfor_s = 9223372036854775807\n";
    let path = temp_file(dir.path(), "rules.toml", text.as_bytes());
    let err = crowdgrid::rules::load(&[path], &CENTRE.sites).expect_err("refused");
    assert!(err.to_string().contains("for_s"), "{err}");
}
