//! The live rule set and how it changes. Each site's rules start as its file in `rule_files` (or the default
//! density rule); a change made through the API is validated against every site (every problem at once), stored
//! as a new version in the dispatch database (who, when, why, diff: `store::rule_versions`) and applied to the
//! running engine without a restart ([`Engine::replace_rules`] keeps the state of unchanged rules). Every
//! instance polls the newest version number and recompiles when it moves, so with PostgreSQL a change made on one
//! instance is in force on all of them within [`POLL`]; a rollback is a new version holding an older text.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowdgrid_proto::config::ConfigError;
use crowdgrid_proto::site::Site;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::rules::{self, Engine, RuleSet, RuleText};
use crate::store::dispatch_db::DispatchDb;
use crate::store::rule_versions::NewVersion;
use crate::store::StoreError;

/// How often an instance looks for a version made elsewhere.
pub const POLL: Duration = Duration::from_secs(2);

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulebookError {
    /// The rules do not compile; every problem is listed.
    #[error("{0}")]
    Invalid(ConfigError),
    /// No such site or version.
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// One site's rules in force.
#[derive(Debug, Clone, Serialize)]
pub struct SiteRulesText {
    /// Site id.
    pub site: String,
    /// The version in force (`None`: its file as configured, or the default rule).
    pub version: Option<i64>,
    /// The rules file in force (`None`: no file, the default density rule from the zones' thresholds).
    pub toml: Option<String>,
}

/// The live rule set of a centre instance.
#[derive(Clone)]
pub struct Rulebook {
    sites: Vec<Arc<Site>>,
    files: Vec<PathBuf>,
    db: DispatchDb,
    engine: Arc<Mutex<Engine>>,
    applied: Arc<AtomicI64>,
}

/// The `site = "..."` of a rules file, if it has one.
fn site_of(text: &str) -> Option<String> {
    crowdgrid_proto::config::site_key(&text.parse::<toml::Table>().ok()?)
}

impl Rulebook {
    /// The texts in force: each configured file, replaced by its site's newest version when there is one; with the
    /// newest version number (0 when there is none).
    async fn texts(
        files: &[PathBuf],
        db: &DispatchDb,
    ) -> Result<(Vec<(String, RuleText, Option<i64>)>, i64), RulebookError> {
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f)
                .map_err(|source| RulebookError::Invalid(ConfigError::Read { path: f.clone(), source }))?;
            out.push((site_of(&text).unwrap_or_default(), RuleText { name: f.clone(), text }, None));
        }
        let mut newest = 0;
        for v in db.live_rule_versions().await? {
            newest = newest.max(v.version);
            let doc =
                RuleText { name: PathBuf::from(format!("{} rules, version {}", v.site, v.version)), text: v.toml };
            match out.iter_mut().find(|(s, _, _)| *s == v.site) {
                Some(slot) => *slot = (v.site, doc, Some(v.version)),
                None => out.push((v.site, doc, Some(v.version))),
            }
        }
        Ok((out, newest))
    }

    /// Each site's rules file in force, as `(site, toml, version)` (`crowdgrid rules export`).
    pub async fn in_force(
        files: &[PathBuf],
        db: &DispatchDb,
    ) -> Result<Vec<(String, String, Option<i64>)>, RulebookError> {
        let (texts, _) = Self::texts(files, db).await?;
        Ok(texts.into_iter().map(|(site, doc, v)| (site, doc.text, v)).collect())
    }

    /// The rule set to start with, and the version it includes.
    pub async fn initial(
        sites: &[Arc<Site>],
        files: &[PathBuf],
        db: &DispatchDb,
    ) -> Result<(RuleSet, i64), RulebookError> {
        let (texts, newest) = Self::texts(files, db).await?;
        let docs: Vec<RuleText> = texts.into_iter().map(|(_, d, _)| d).collect();
        match rules::compile(&docs, sites) {
            Ok(set) => Ok((set, newest)),
            // A stored version that no longer fits the sites (a zone renamed since) must not keep the centre down:
            // it starts on the files, says so, and the next change through the API replaces the broken version.
            Err(e) if newest > 0 => {
                tracing::error!(error = %e, "the stored rule versions do not compile against the sites; starting from the rule files");
                Ok((rules::load(files, sites).map_err(RulebookError::Invalid)?, newest))
            }
            Err(e) => Err(RulebookError::Invalid(e)),
        }
    }

    /// The rulebook of an engine started from [`Rulebook::initial`] at `version`.
    pub fn new(
        sites: Vec<Arc<Site>>,
        files: Vec<PathBuf>,
        db: DispatchDb,
        engine: Arc<Mutex<Engine>>,
        version: i64,
    ) -> Self {
        Rulebook { sites, files, db, engine, applied: Arc::new(AtomicI64::new(version)) }
    }

    /// The newest version applied here (0: the files only).
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Every site's rules in force.
    pub async fn current(&self) -> Result<Vec<SiteRulesText>, RulebookError> {
        let (texts, _) = Self::texts(&self.files, &self.db).await?;
        Ok(self
            .sites
            .iter()
            .map(|s| {
                let t = texts.iter().find(|(site, _, _)| *site == s.config.id);
                SiteRulesText {
                    site: s.config.id.clone(),
                    version: t.and_then(|t| t.2),
                    toml: t.map(|t| t.1.text.clone()),
                }
            })
            .collect())
    }

    /// The rules in force, compiled (what the engine runs, for a backtest's reference set).
    pub async fn compiled(&self) -> Result<RuleSet, RulebookError> {
        let (texts, _) = Self::texts(&self.files, &self.db).await?;
        let docs: Vec<RuleText> = texts.into_iter().map(|(_, d, _)| d).collect();
        rules::compile(&docs, &self.sites).map_err(RulebookError::Invalid)
    }

    /// The dispatch database (for the version history).
    pub fn db(&self) -> &DispatchDb {
        &self.db
    }

    /// Checks `toml` as `site`'s rules file against every site, without storing anything.
    pub async fn check(&self, site: &str, toml: &str) -> Result<RuleSet, RulebookError> {
        if !self.sites.iter().any(|s| s.config.id == site) {
            return Err(RulebookError::NotFound(format!("no site {site:?}")));
        }
        let (mut texts, _) = Self::texts(&self.files, &self.db).await?;
        let doc = RuleText { name: PathBuf::from(format!("{site} rules (proposed)")), text: toml.to_string() };
        let mut p = crowdgrid_proto::config::Problems::new();
        if site_of(toml).as_deref() != Some(site) {
            p.push("site", format!("the rules file must say site = {site:?}"));
        }
        p.into_result(&doc.name).map_err(RulebookError::Invalid)?;
        match texts.iter_mut().find(|(s, _, _)| s == site) {
            Some(slot) => slot.1 = doc,
            None => texts.push((site.to_string(), doc, None)),
        }
        let docs: Vec<RuleText> = texts.into_iter().map(|(_, d, _)| d).collect();
        rules::compile(&docs, &self.sites).map_err(RulebookError::Invalid)
    }

    /// Validates `toml` as `site`'s new rules, stores it as a version by `author` with `note`, and applies it.
    pub async fn propose(&self, site: &str, toml: &str, author: &str, note: &str) -> Result<i64, RulebookError> {
        self.check(site, toml).await?;
        let now = self.current().await?.into_iter().find(|s| s.site == site);
        let before = now.as_ref().and_then(|s| s.toml.clone()).unwrap_or_default();
        if let Some(SiteRulesText { version: None, toml: Some(file), .. }) = &now {
            // The first change of a site keeps its rules file as a version too, so a rollback can return to it.
            self.db
                .add_rule_version(NewVersion {
                    site: site.to_string(),
                    toml: file.clone(),
                    author: "config".into(),
                    note: "the rules file in rule_files, before the first change".into(),
                    diff: String::new(),
                })
                .await?;
        }
        let diff = similar::TextDiff::from_lines(before.as_str(), toml)
            .unified_diff()
            .context_radius(2)
            .header("before", "after")
            .to_string();
        let version = self
            .db
            .add_rule_version(NewVersion {
                site: site.to_string(),
                toml: toml.to_string(),
                author: author.to_string(),
                note: note.to_string(),
                diff,
            })
            .await?;
        tracing::info!(site, version, author, note, "rule set changed");
        self.sync().await?;
        Ok(version)
    }

    /// Makes `version`'s text its site's rules again (as a new version: the history only grows).
    pub async fn rollback(&self, version: i64, author: &str, note: &str) -> Result<i64, RulebookError> {
        let v = self
            .db
            .rule_version(version)
            .await?
            .ok_or_else(|| RulebookError::NotFound(format!("no version {version}")))?;
        let note = if note.is_empty() {
            format!("rollback to version {version}")
        } else {
            format!("rollback to version {version}: {note}")
        };
        self.propose(&v.site, &v.toml, author, &note).await
    }

    /// Applies the newest stored version if this instance has not yet (a change made here or on another
    /// instance). Returns whether it changed the engine.
    pub async fn sync(&self) -> Result<bool, RulebookError> {
        // One cheap query per poll; the files and the versions are read only when something changed.
        if self.db.newest_rule_version().await? <= self.applied() {
            return Ok(false);
        }
        let (texts, newest) = Self::texts(&self.files, &self.db).await?;
        let docs: Vec<RuleText> = texts.into_iter().map(|(_, d, _)| d).collect();
        let set = rules::compile(&docs, &self.sites).map_err(RulebookError::Invalid)?;
        self.engine.lock().unwrap_or_else(|e| e.into_inner()).replace_rules(set);
        self.applied.store(newest, Ordering::SeqCst);
        tracing::info!(version = newest, "rule set applied");
        Ok(true)
    }

    /// Polls for versions made elsewhere until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sync().await {
                tracing::error!(error = %e, "cannot apply the newest rule set version; keeping the rules in force");
            }
        }
    }
}
