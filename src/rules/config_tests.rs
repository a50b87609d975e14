//! Rule-file tests: validation lists every problem, defaults, and the shipped files load against the shipped
//! sites (and keep the demo raising a ticket).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crowdgrid_proto::config::{parse_toml, ConfigError, Problems};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::Level;

use super::compile::compile_file;
use super::config::RuleFile;
use super::testutil::{at, site};
use super::{load, Engine, Observation, RuleSet, Transition};

/// The repository root (works when this module is compiled from another crate too).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("config/central.toml").exists() {
        return manifest.to_path_buf();
    }
    Path::new(file!()).ancestors().nth(3).unwrap_or(manifest).to_path_buf()
}

fn problems(text: &str) -> Vec<String> {
    let file: RuleFile = parse_toml(Path::new("rules.toml"), text).expect("parses");
    let mut p = Problems::new();
    compile_file(&file, site(), &mut p);
    p.items().to_vec()
}

#[test]
fn validation_lists_every_problem() {
    let bad = r#"
site = "t"
holidays = ["2026-13-01"]
school_holidays = [{ from = "2026-08-31", to = "2026-07-01" }]
[[rule]]
id = "a"
metric = "density"
zones = ["beach", "nowhere"]
levels = { notice = 3.0, warning = 2.0 }
[[rule]]
id = "a"
metric = "occupancy"
levels = { warning = 0.9 }
[[rule]]
id = "b"
metric = "density"
zone_kinds = ["castle"]
for_s = -1
schedule = { from = "25:00", to = "16:30" }
mute = [{ from = "yesterday", to = "2026-10-01T00:00:00+08:00" }]
[[rule]]
id = "Bad Id"
metric = "predictive"
factor = 2.0
[[rule]]
id = "c"
metric = "disagree"
factor = 0.5
"#;
    let p = problems(bad);
    let expect = [
        "holidays[0]: ",
        "school_holidays[0]: from must not be after to",
        "rule[0].levels: levels must rise",
        "rule[0].zones[1]: unknown zone \"nowhere\"",
        "rule[1].id: duplicate rule id \"a\"",
        "rule[1].zones: zone \"lane\" has no capacity for an occupancy rule",
        "rule[2].for_s: -1 s is out of range",
        "rule[2].schedule.from: ",
        "rule[2].mute[0]: ",
        "rule[2].zone_kinds[0]: no zone of kind \"castle\"",
        "rule[3].id: ",
        "rule[3].factor: not used by metric = \"predictive\"",
        "rule[3].horizon_s: is needed by metric = \"predictive\"",
        "rule[4].factor: a disagree rule needs a factor > 1",
    ];
    for e in expect {
        assert!(p.iter().any(|x| x.starts_with(e)), "missing {e:?} in {p:#?}");
    }
    assert_eq!(p.len(), expect.len(), "{p:#?}");
}

#[test]
fn unknown_keys_and_sites_are_refused() {
    let text = "site = \"t\"\n[[rule]]\nid = \"a\"\nmetric = \"density\"\nthreshold = 3\n";
    assert!(parse_toml::<RuleFile>(Path::new("r.toml"), text).is_err());
    let dir = std::env::temp_dir().join(format!("crowdgrid-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(&a, "site = \"elsewhere\"\n").expect("write");
    std::fs::write(&b, "site = \"t\"\n[[rule]]\nid = \"x\"\nmetric = \"inflow\"\n").expect("write");
    let err = load(&[a, b], &[site()]).expect_err("two bad files");
    let ConfigError::Invalid { problems, .. } = err else { panic!("{err}") };
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("site: \"elsewhere\" is not a configured site"), "{problems:#?}");
    assert!(problems[1].contains("rule[0].levels: is needed by metric = \"inflow\""), "{problems:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defaults_give_one_density_rule_per_zone() {
    let rules = RuleSet::defaults(&[site()]);
    let s = &rules.sites[0];
    assert_eq!((s.rules.len(), s.targets.len()), (1, 3));
    assert_eq!(s.targets[1].levels.thresholds, [Some(1.5), Some(2.5), Some(3.5)], "the jetty's own thresholds");
    let e = Engine::new(load(&[], &[site()]).expect("no files: defaults"));
    assert_eq!(e.views_at(None, at("2026-03-10T12:00:00Z")).len(), 3);
}

fn shipped() -> (Vec<Arc<Site>>, RuleSet) {
    let root = root();
    let central: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("config/central.toml")).expect("central.toml"))
            .expect("toml");
    let list = |key: &str| -> Vec<PathBuf> {
        central[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| root.join("config").join(v.as_str().expect("path")))
            .collect()
    };
    let sites: Vec<Arc<Site>> = list("sites").iter().map(|p| Arc::new(Site::load(p).expect("site loads"))).collect();
    let rules = load(&list("rule_files"), &sites).unwrap_or_else(|e| panic!("{e}"));
    (sites, rules)
}

#[test]
fn shipped_rule_files_load_against_the_shipped_sites() {
    let (_, rules) = shipped();
    assert_eq!(rules.sites.len(), 2);
    let ids: Vec<&str> = rules.sites[0].rules.iter().map(|r| r.id.as_str()).collect();
    assert!(ids.contains(&"density") && ids.contains(&"early-warning") && ids.contains(&"sources-disagree"));
    assert!(rules.sites[1].rules.iter().any(|r| r.id == "school-pickup" && r.schedule.is_some()));
    let production = root().join("config/central-production.toml");
    assert!(std::fs::read_to_string(production)
        .expect("production")
        .contains("rule_files = [\"west-taihu/rules.toml\""));
}

#[test]
fn demo_zones_raise_a_ticket_at_any_time_of_day() {
    let (_, rules) = shipped();
    // Real timestamps: 03:00 local on a Sunday (no school run) and a weekday afternoon.
    for ts in ["2026-03-08T03:00:00+08:00", "2026-03-10T15:50:00+08:00"] {
        let mut e = Engine::new(rules.clone());
        for (site, zone, density) in [("boai-school", "gate-plaza", 4.0), ("west-taihu", "beach", 4.0)] {
            let obs = Observation {
                site,
                zone,
                ts: at(ts),
                density,
                count: 0.0,
                inflow_per_min: None,
                conflict: None,
                sources: &[],
            };
            let ev = e.observe(&obs);
            assert!(
                ev.iter()
                    .any(|e| e.rule == "density"
                        && e.transition == Transition::Fire { level: Level::Warning, value: 4.0 }),
                "{site}/{zone} at {ts}: {ev:?}"
            );
        }
    }
}
