//! docs/openapi.json describes exactly the routes of `crowdgrid::api::ROUTES` (plus `/healthz` and
//! `/metrics`), the centre serves it unchanged without a token, and real answers of a running centre
//! match the schemas it declares.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid::auth::Role;
use crowdgrid_proto::{Reading, SourceKind};
use serde_json::{json, Value};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    let path = root().join("docs/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("docs/openapi.json is not JSON: {e}"))
}

/// Every `(METHOD, path)` the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for (k, _) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&k.as_str()) {
                out.insert((k.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn document_lists_every_route_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut expected: BTreeSet<(String, String)> =
        crowdgrid::api::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(expected.len(), crowdgrid::api::ROUTES.len(), "ROUTES has duplicates");
    expected.insert(("GET".into(), "/healthz".into()));
    expected.insert(("GET".into(), "/metrics".into()));
    let got = documented(&doc);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing from openapi.json: {missing:?}; not routes: {extra:?}");

    // The open endpoints say so; everything else inherits the global bearer requirement.
    assert_eq!(doc["security"], json!([{ "bearerAuth": [] }]));
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    for (m, p) in &got {
        let op = &doc["paths"][p][m.to_lowercase()];
        let open = ["/healthz", "/metrics", "/api/v1/openapi.json"].contains(&p.as_str());
        assert_eq!(op["security"] == json!([]), open, "{m} {p}: security override");
        if !open {
            assert!(op["responses"]["401"].is_object(), "{m} {p}: no 401 response");
        }
        // Every `{param}` in the path is declared as a path parameter.
        for name in p.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == name && x["in"] == "path" && x["required"] == true));
            assert!(declared, "{m} {p}: path parameter {name} not declared");
        }
    }
    let sse = &doc["paths"]["/api/v1/events"]["get"];
    assert!(sse["responses"]["200"]["content"]["text/event-stream"].is_object());
    assert!(sse["parameters"].as_array().unwrap().iter().any(|x| x["name"] == "ticket" && x["in"] == "query"));
}

/// A small validator for the subset of OpenAPI 3.0 schemas the document uses: `$ref`, `allOf`,
/// `nullable`, `type`, `enum`, `format: date-time`, `required`, `properties`, `additionalProperties`,
/// `items`. Objects may not carry properties the schema does not name (unless `additionalProperties`).
struct Checker<'a> {
    doc: &'a Value,
    errors: Vec<String>,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let mut node = self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "unresolved $ref {r}");
            s = node;
        }
        s
    }

    /// Property names an object schema declares (through `allOf` too).
    fn declared(&self, s: &'a Value, out: &mut BTreeSet<String>) -> bool {
        let s = self.resolve(s);
        let mut open = s.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false));
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            out.extend(p.keys().cloned());
        }
        for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            open |= self.declared(sub, out);
        }
        open
    }

    fn check(&mut self, s: &'a Value, v: &Value, at: &str) {
        let s = self.resolve(s);
        if v.is_null() {
            if s["nullable"] != true {
                self.errors.push(format!("{at}: null but not nullable"));
            }
            return;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check_inner(sub, v, at, false);
            }
            self.check_keys(s, v, at);
            return;
        }
        self.check_inner(s, v, at, true);
    }

    fn check_keys(&mut self, s: &'a Value, v: &Value, at: &str) {
        if let Some(o) = v.as_object() {
            let mut names = BTreeSet::new();
            if !self.declared(s, &mut names) {
                for k in o.keys().filter(|k| !names.contains(*k)) {
                    self.errors.push(format!("{at}: undocumented field {k:?}"));
                }
            }
        }
    }

    fn check_inner(&mut self, s: &'a Value, v: &Value, at: &str, strict: bool) {
        let s = self.resolve(s);
        if v.is_null() || s.get("allOf").is_some() {
            return self.check(s, v, at);
        }
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
        let ok = match ty {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            self.errors.push(format!("{at}: expected {ty}, got {v}"));
            return;
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                self.errors.push(format!("{at}: {v} not in {e:?}"));
            }
        }
        if s["format"] == "date-time" {
            if let Some(t) = v.as_str() {
                if chrono::DateTime::parse_from_rfc3339(t).is_err() {
                    self.errors.push(format!("{at}: {t:?} is not RFC 3339"));
                }
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                self.check(items, x, &format!("{at}[{i}]"));
            }
        }
        if let Some(o) = v.as_object() {
            for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    self.errors.push(format!("{at}: missing required {r:?}"));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    self.check(ps, x, &format!("{at}.{k}"));
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    self.check(ap, x, &format!("{at}.{k}"));
                }
            }
            if strict {
                self.check_keys(s, v, at);
            }
        }
    }
}

/// The schema of `METHOD path`'s answer with `status` as JSON.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let mut r = &doc["paths"][path][method.to_lowercase()]["responses"][status.to_string()];
    if let Some(reference) = r.get("$ref").and_then(Value::as_str) {
        r = &doc["components"]["responses"][reference.rsplit('/').next().unwrap()];
    }
    let s = &r["content"]["application/json"]["schema"];
    assert!(s.is_object(), "{method} {path}: no JSON schema for {status}");
    s
}

struct Api {
    base: String,
    http: reqwest::Client,
    doc: Value,
}

impl Api {
    /// Calls `method path` (`template` is its documented path) and checks status and body against the
    /// document; returns the body.
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let v: Value = resp.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        let mut c = Checker { doc: &self.doc, errors: Vec::new() };
        c.check(response_schema(&self.doc, method, template, status), &v, &format!("{method} {path} {status}"));
        assert!(c.errors.is_empty(), "answer does not match docs/openapi.json:\n{}\n{v:#}", c.errors.join("\n"));
        v
    }
}

/// Publishes one reading above the beach's warning threshold on the centre's embedded broker.
async fn crowd_the_beach(host: &str, port: u16, area_m2: f64, warning: f64) {
    let density = warning * 1.2;
    let mut r = Reading::new(
        "west-taihu",
        "beach",
        SourceKind::Camera,
        "openapi-test/cam",
        Utc::now(),
        (density * area_m2).round(),
        area_m2,
        0.9,
    );
    r.seq = 1;
    r.classes = Some(crowdgrid_proto::ClassCounts { person: r.count, vehicle: 0.0 });
    // As a tracking camera sends it: the detector's own count, dwell, vehicles through its line.
    r.tracked = Some(crowdgrid_proto::Tracked {
        raw_count: r.count + 2.0,
        dwell_p50_s: 12.0,
        dwell_p90_s: 40.0,
        vehicle_inflow_per_min: Some(1.0),
        vehicle_outflow_per_min: Some(0.0),
    });
    publish(host, port, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centre_serves_the_document_and_answers_match_it() {
    let doc = document();
    let dir = tempfile::tempdir().unwrap();
    let cfg = central_embedded(dir.path());
    let beach = cfg.sites.iter().find(|s| s.config.id == "west-taihu").and_then(|s| s.zone("beach")).expect("beach");
    let (area_m2, warning) = (beach.area_m2, beach.thresholds.warning);
    let central = crowdgrid::central::start(cfg).await.unwrap();
    let db = dir.path().join("central.db");
    let api = Api { base: format!("http://{}", central.api_addr), http: reqwest::Client::new(), doc: doc.clone() };

    // (c) The served document is the file, without a token.
    let resp = api.http.get(format!("{}/api/v1/openapi.json", api.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served, doc, "GET /api/v1/openapi.json differs from docs/openapi.json");

    // Open endpoints.
    api.call("GET", "/healthz", "/healthz", None, None, 200).await;
    let metrics = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));

    // Errors as documented.
    api.call("GET", "/api/v1/me", "/api/v1/me", None, None, 401).await;
    api.call("GET", "/api/v1/me", "/api/v1/me", Some("cg_not-a-token"), None, 401).await;

    let admin = admin(&db).await;
    let engineer = token(&db, Role::Engineer, None).await;
    let worker = token(&db, Role::GridWorker, Some("wang-lei")).await;

    crowd_the_beach(&central.mqtt.0, central.mqtt.1, area_m2, warning).await;
    let url = format!("{}/api/v1/tickets", api.base);
    let tickets = eventually(Duration::from_secs(10), "a ticket for the beach", || async {
        let v = get_json(&url, &admin).await;
        v.as_array().filter(|a| !a.is_empty()).map(|_| v.clone())
    })
    .await;
    let id = tickets[0]["id"].as_i64().unwrap();

    let a = Some(admin.as_str());
    api.call("GET", "/api/v1/me", "/api/v1/me", a, None, 200).await;
    api.call("GET", "/api/v1/me", "/api/v1/me", Some(&worker), None, 200).await;
    api.call("GET", "/api/v1/sites", "/api/v1/sites", a, None, 200).await;
    api.call("GET", "/api/v1/zones", "/api/v1/zones?site=west-taihu", a, None, 200).await;
    api.call("GET", "/api/v1/zones.geojson", "/api/v1/zones.geojson", a, None, 200).await;
    let series = "/api/v1/zones/{site}/{zone}/series";
    let points = api.call("GET", series, "/api/v1/zones/west-taihu/beach/series", a, None, 200).await;
    assert!(!points.as_array().unwrap().is_empty(), "the reading is in the series");
    let cam =
        points.as_array().unwrap().iter().find(|p| p["source_id"] == "openapi-test/cam").expect("the camera's point");
    assert_eq!((cam["dwell_p50_s"].as_f64(), cam["dwell_p90_s"].as_f64()), (Some(12.0), Some(40.0)), "{cam}");
    assert_eq!(
        (cam["vehicle_inflow_per_min"].as_f64(), cam["vehicle_outflow_per_min"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    assert_eq!(cam["raw_count"].as_f64(), cam["count"].as_f64().map(|c| c + 2.0), "stored beside the tracked count");
    api.call("GET", series, "/api/v1/zones/west-taihu/atlantis/series", a, None, 404).await;
    api.call("GET", "/api/v1/tickets", "/api/v1/tickets?state=all&site=west-taihu", a, None, 200).await;
    api.call("GET", "/api/v1/tickets", "/api/v1/tickets?state=nope", a, None, 400).await;
    api.call("GET", "/api/v1/tickets/{id}", &format!("/api/v1/tickets/{id}"), a, None, 200).await;
    api.call("GET", "/api/v1/tickets/{id}", "/api/v1/tickets/999999", a, None, 404).await;
    api.call("GET", "/api/v1/edges", "/api/v1/edges", a, None, 200).await;
    api.call("GET", "/api/v1/rules", "/api/v1/rules", a, None, 200).await;
    api.call("GET", "/api/v1/rules", "/api/v1/rules", Some(&worker), None, 403).await;
    api.call("GET", "/api/v1/kpis", "/api/v1/kpis?site=west-taihu", a, None, 200).await;
    let city = api.call("GET", "/api/v1/city", "/api/v1/city?top=5", a, None, 200).await;
    assert!(city["worst"].as_array().is_some_and(|w| !w.is_empty()), "the crowded beach is among the worst: {city}");
    api.call("GET", "/api/v1/city", "/api/v1/city", Some(&worker), None, 403).await;
    api.call("GET", "/api/v1/city", "/api/v1/city?top=many", a, None, 400).await;
    api.call("GET", "/api/v1/outbox", "/api/v1/outbox", a, None, 200).await;

    let act = "/api/v1/tickets/{id}/{action}";
    let on = |action: &str| format!("/api/v1/tickets/{id}/{action}");
    api.call("POST", act, &on("acknowledge"), Some(&engineer), Some(json!({})), 403).await;
    api.call("POST", act, &on("acknowledge"), a, Some(json!({})), 200).await;
    api.call("POST", act, &on("resolve"), a, Some(json!({})), 400).await;
    api.call("POST", act, &on("resolve"), a, Some(json!({ "note": "crowd dispersed" })), 200).await;
    api.call("POST", act, &on("acknowledge"), a, Some(json!({})), 409).await;
    api.call("POST", act, &on("fly"), a, Some(json!({})), 404).await;
    let detail = api.call("GET", "/api/v1/tickets/{id}", &format!("/api/v1/tickets/{id}"), a, None, 200).await;
    assert!(detail["events"].as_array().unwrap().len() >= 3, "raised, acknowledged, resolved: {detail:#}");

    // The engineers' tuning loop: rules in force and versions, a check, a change, a rollback, a backtest.
    let sets = "/api/v1/rulesets";
    api.call("GET", sets, sets, a, None, 200).await;
    api.call("GET", sets, sets, Some(&worker), None, 403).await;
    let rules = "site = \"west-taihu\"\n[[rule]]\nid = \"jetty-crowd\"\nmetric = \"density\"\nzones = [\"jetty\"]\n";
    let change = json!({ "site": "west-taihu", "toml": rules, "note": "openapi" });
    api.call("POST", "/api/v1/rulesets/check", "/api/v1/rulesets/check", Some(&engineer), Some(change.clone()), 200)
        .await;
    let bad = json!({ "site": "west-taihu", "toml": rules.replace("jetty\"]", "moon\"]") });
    api.call("POST", "/api/v1/rulesets/check", "/api/v1/rulesets/check", Some(&engineer), Some(bad.clone()), 422).await;
    api.call("POST", sets, sets, Some(&engineer), Some(bad), 422).await;
    api.call("POST", sets, sets, Some(&worker), Some(change.clone()), 403).await;
    let made = api.call("POST", sets, sets, Some(&engineer), Some(change.clone()), 201).await;
    let stricter = json!({ "site": "west-taihu", "toml": format!("{rules}levels = {{ warning = 2.0 }}\n") });
    api.call("POST", sets, sets, Some(&engineer), Some(stricter), 201).await;
    let back = "/api/v1/rulesets/{version}/rollback";
    let first = made["version"].as_i64().unwrap();
    api.call("POST", back, &format!("/api/v1/rulesets/{first}/rollback"), Some(&engineer), Some(json!({})), 201).await;
    api.call("POST", back, "/api/v1/rulesets/99999/rollback", Some(&engineer), Some(json!({})), 404).await;
    api.call("POST", back, &format!("/api/v1/rulesets/{first}/rollback"), Some(&worker), Some(json!({})), 403).await;
    api.call("POST", "/api/v1/rulesets/check", "/api/v1/rulesets/check", Some(&worker), Some(change.clone()), 403)
        .await;
    api.call("GET", sets, sets, a, None, 200).await;
    let bt = json!({ "candidates": [{ "site": "west-taihu", "toml": rules }] });
    api.call("POST", "/api/v1/backtest", "/api/v1/backtest", Some(&engineer), Some(bt.clone()), 200).await;
    api.call("POST", "/api/v1/backtest", "/api/v1/backtest", Some(&worker), Some(bt), 403).await;

    // The model pool and camera settings (the edge is not running: the settings wait retained for it).
    api.call("GET", "/api/v1/models", "/api/v1/models", a, None, 200).await;
    api.call("GET", "/api/v1/models", "/api/v1/models", Some(&worker), None, 403).await;
    let cam = "/api/v1/cameras/{site}/{edge}/{camera}/settings";
    let cam_url = "/api/v1/cameras/west-taihu/oa-edge/beach-cam/settings";
    let tune = json!({ "person_threshold": 0.4, "model": "nanodet-g-coco", "note": "openapi" });
    let made = api.call("POST", cam, cam_url, Some(&engineer), Some(tune.clone()), 201).await;
    api.call("POST", cam, cam_url, Some(&worker), Some(tune.clone()), 403).await;
    api.call("POST", cam, cam_url, Some(&engineer), Some(json!({ "nms_iou": 2.0 })), 422).await;
    api.call("POST", cam, "/api/v1/cameras/moon/oa-edge/beach-cam/settings", Some(&engineer), Some(tune), 404).await;
    api.call("GET", cam, cam_url, a, None, 200).await;
    api.call("GET", "/api/v1/cameras", "/api/v1/cameras", a, None, 200).await;
    let cam_back = "/api/v1/cameras/settings/{version}/rollback";
    let v = made["version"].as_i64().unwrap();
    api.call("POST", cam_back, &format!("/api/v1/cameras/settings/{v}/rollback"), Some(&engineer), None, 201).await;
    api.call("POST", cam_back, "/api/v1/cameras/settings/99999/rollback", Some(&engineer), None, 404).await;
    api.call("POST", cam_back, &format!("/api/v1/cameras/settings/{v}/rollback"), Some(&worker), None, 403).await;

    let new = json!({ "name": "openapi-op", "role": "operator" });
    api.call("POST", "/api/v1/tokens", "/api/v1/tokens", Some(&worker), Some(new.clone()), 403).await;
    let created = api.call("POST", "/api/v1/tokens", "/api/v1/tokens", a, Some(new), 200).await;
    assert!(created["token"].as_str().unwrap().starts_with("cg_"));

    central.stop().await;
}
