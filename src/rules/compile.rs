//! Compiled rules: [`load`] reads the rule files and checks them against the sites, reporting every problem
//! at once; [`RuleSet::defaults`] gives a site without a rule file its zones' density thresholds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use crowdgrid_proto::config::{parse_toml, ConfigError, Problems};
use crowdgrid_proto::site::{Site, Zone};
use crowdgrid_proto::{Level, SourceKind};
use serde::Serialize;

use super::config::RuleFile;
use super::machine::{Levels, Timing};
use super::schedule::{parse_date, Calendar, Mute, Schedule};
use super::validate::compile_rule;
use super::Audience;

/// The default rule's id (also the one the centre used before rule files).
pub const DEFAULT_RULE: &str = "density";
/// The default rule's clear duration.
pub const DEFAULT_CLEAR_FOR_S: i64 = 120;

/// What a compiled rule measures, with its metric-specific settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "metric", rename_all = "snake_case")]
pub enum Metric {
    /// People per m².
    Density,
    /// People count / zone capacity.
    Occupancy,
    /// Gate inflow, people/min.
    Inflow,
    /// People–vehicle conflict, people.
    Conflict,
    /// Time until the warning density, from the least-squares trend.
    Predictive {
        /// Fire when the warning level is nearer than this.
        horizon_s: i64,
        /// Fit the trend over this long.
        window_s: i64,
        /// Points needed before the trend is trusted.
        min_points: usize,
    },
    /// A watched source not heard for longer than `expected_every_s`.
    Silent {
        /// Expected reporting interval, seconds.
        expected_every_s: i64,
        /// Watched kinds (empty: all).
        source_kinds: Vec<SourceKind>,
    },
    /// Two sources' densities differ by more than `factor`.
    Disagree {
        /// Largest tolerated max/min ratio.
        factor: f64,
        /// Sources below this density are ignored.
        min_density: f64,
        /// Sources older than this (seconds) are ignored.
        max_age_s: i64,
    },
}

impl Metric {
    /// The metric's name as written in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Density => "density",
            Metric::Occupancy => "occupancy",
            Metric::Inflow => "inflow",
            Metric::Conflict => "conflict",
            Metric::Predictive { .. } => "predictive",
            Metric::Silent { .. } => "silent",
            Metric::Disagree { .. } => "disagree",
        }
    }

    /// The unit of the rule's value, as tickets and the API carry it.
    pub fn unit(&self) -> &'static str {
        match self {
            Metric::Density => "people/m²",
            Metric::Occupancy => "fraction of capacity",
            Metric::Inflow => "people/min",
            Metric::Conflict => "people",
            Metric::Predictive { .. } => "s to warning",
            Metric::Silent { .. } => "s silent",
            Metric::Disagree { .. } => "ratio",
        }
    }

    /// True when a smaller value is the more urgent one (seconds left before the warning density): a
    /// ticket's peak keeps the most urgent value, so it is the minimum for these and the maximum otherwise.
    pub fn lower_is_urgent(&self) -> bool {
        matches!(self, Metric::Predictive { .. })
    }
}

/// One compiled rule of a site.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Identifier (the ticket's rule name).
    pub id: String,
    /// What it measures.
    pub metric: Metric,
    /// Who gets the ticket.
    pub audience: Audience,
    /// `for`, `clear_for`, cooldown.
    pub timing: Timing,
    /// Active window, if any.
    pub schedule: Option<Schedule>,
    /// Mute windows.
    pub mute: Vec<Mute>,
}

/// A rule bound to one zone, with that zone's resolved levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Index of the zone in `Site::zones`.
    pub zone: usize,
    /// Index of the rule in [`SiteRules::rules`].
    pub rule: usize,
    /// Levels (for predictive: the warning density to forecast; silent/disagree: their limit as `warning`).
    pub levels: Levels,
    /// Zone capacity (people), for occupancy.
    pub capacity: Option<f64>,
}

/// The compiled rules of one site.
#[derive(Debug, Clone)]
pub struct SiteRules {
    /// The site.
    pub site: Arc<Site>,
    /// Its holidays.
    pub calendar: Calendar,
    /// Its rules, in file order.
    pub rules: Vec<Rule>,
    /// Every (zone, rule) pair.
    pub targets: Vec<Target>,
}

/// Compiled rules for all sites.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// One entry per site, in the order the sites were given.
    pub sites: Vec<SiteRules>,
}

impl RuleSet {
    /// For every site: one `density` rule per zone from the zone's thresholds (`for` 0, the zone's clear ratio,
    /// `clear_for` 120 s, no cooldown, a ticket from warning).
    pub fn defaults(sites: &[Arc<Site>]) -> RuleSet {
        RuleSet { sites: sites.iter().map(|s| default_site(s.clone())).collect() }
    }
}

/// The default rule set of one site.
pub fn default_site(site: Arc<Site>) -> SiteRules {
    let rule = Rule {
        id: DEFAULT_RULE.to_string(),
        metric: Metric::Density,
        audience: Audience::GridWorker,
        timing: Timing {
            for_: Duration::zero(),
            clear_for: Duration::seconds(DEFAULT_CLEAR_FOR_S),
            cooldown: Duration::zero(),
        },
        schedule: None,
        mute: Vec::new(),
    };
    let targets = site.zones.iter().enumerate().map(|(i, z)| zone_target(i, 0, z, Level::Warning)).collect::<Vec<_>>();
    SiteRules { site, calendar: Calendar::default(), rules: vec![rule], targets }
}

/// A target on `zone` with the zone's own thresholds.
pub fn zone_target(zone_idx: usize, rule: usize, zone: &Zone, fire_from: Level) -> Target {
    let t = &zone.thresholds;
    Target {
        zone: zone_idx,
        rule,
        levels: Levels {
            thresholds: [Some(t.notice), Some(t.warning), Some(t.critical)],
            clear_ratio: t.clear_ratio,
            fire_from,
        },
        capacity: zone.config.capacity.map(f64::from),
    }
}

/// A rules file's text and the name its problems are reported under (its path, or `west-taihu, version 7`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleText {
    /// Path or label.
    pub name: PathBuf,
    /// The TOML.
    pub text: String,
}

/// Loads the rule files (at most one per site) and compiles them against `sites`; sites without a file get
/// [`RuleSet::defaults`]. Every problem of every file is reported at once.
pub fn load(files: &[PathBuf], sites: &[Arc<Site>]) -> Result<RuleSet, ConfigError> {
    let mut texts = Vec::new();
    let mut failures = Vec::new();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push(RuleText { name: file.clone(), text }),
            Err(source) => failures.push(ConfigError::Read { path: file.clone(), source }),
        }
    }
    compile_texts(&texts, sites, failures)
}

/// [`load`] on texts already in memory (a rule set version from the database, a candidate from the console).
pub fn compile(texts: &[RuleText], sites: &[Arc<Site>]) -> Result<RuleSet, ConfigError> {
    compile_texts(texts, sites, Vec::new())
}

fn compile_texts(
    texts: &[RuleText],
    sites: &[Arc<Site>],
    mut failures: Vec<ConfigError>,
) -> Result<RuleSet, ConfigError> {
    let mut compiled: Vec<Option<SiteRules>> = vec![None; sites.len()];
    let mut owner: Vec<Option<&Path>> = vec![None; sites.len()];
    for doc in texts {
        let file = doc.name.as_path();
        let parsed: RuleFile = match parse_toml(file, &doc.text) {
            Ok(f) => f,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut p = Problems::new();
        let idx = sites.iter().position(|s| s.config.id == parsed.site);
        match idx {
            None => p.push("site", format!("{:?} is not a configured site", parsed.site)),
            Some(i) => {
                if let Some(other) = owner[i] {
                    p.push("site", format!("{:?} already has a rule file ({})", parsed.site, other.display()));
                }
                owner[i] = Some(file);
            }
        }
        let site_rules = idx.map(|i| compile_file(&parsed, sites[i].clone(), &mut p));
        match p.into_result(file) {
            Err(e) => failures.push(e),
            Ok(()) => {
                if let (Some(i), Some(r)) = (idx, site_rules) {
                    compiled[i] = Some(r);
                }
            }
        }
    }
    match failures.len() {
        0 => Ok(RuleSet {
            sites: compiled.into_iter().zip(sites).map(|(c, s)| c.unwrap_or_else(|| default_site(s.clone()))).collect(),
        }),
        1 => Err(failures.remove(0)),
        _ => {
            let path = match &failures[0] {
                ConfigError::Read { path, .. }
                | ConfigError::Parse { path, .. }
                | ConfigError::Invalid { path, .. } => path.clone(),
            };
            Err(ConfigError::Invalid { path, problems: failures.iter().map(|e| e.to_string()).collect() })
        }
    }
}

/// Compiles one parsed rule file for `site`, recording every problem.
pub fn compile_file(file: &RuleFile, site: Arc<Site>, p: &mut Problems) -> SiteRules {
    let mut calendar = Calendar::default();
    for (i, d) in file.holidays.iter().enumerate() {
        match parse_date(d) {
            Some(d) => {
                calendar.holidays.insert(d);
            }
            None => p.push(format!("holidays[{i}]"), format!("{d:?} is not a date YYYY-MM-DD")),
        }
    }
    for (i, r) in file.school_holidays.iter().enumerate() {
        match (parse_date(&r.from), parse_date(&r.to)) {
            (Some(a), Some(b)) if a <= b => calendar.school_holidays.push((a, b)),
            (Some(_), Some(_)) => p.push(format!("school_holidays[{i}]"), "from must not be after to"),
            _ => p.push(format!("school_holidays[{i}]"), "from and to must be dates YYYY-MM-DD"),
        }
    }
    let mut rules = Vec::new();
    let mut targets = Vec::new();
    for (i, rc) in file.rules.iter().enumerate() {
        if file.rules[..i].iter().any(|o| o.id == rc.id) {
            p.push(format!("rule[{i}].id"), format!("duplicate rule id {:?}", rc.id));
        }
        if let Some((rule, zones)) = compile_rule(&format!("rule[{i}]"), rc, &site, p) {
            let idx = rules.len();
            targets.extend(zones.into_iter().map(|mut t| {
                t.rule = idx;
                t
            }));
            rules.push(rule);
        }
    }
    SiteRules { site, calendar, rules, targets }
}
