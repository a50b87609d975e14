//! The engineers' tuning loop over HTTP: the rules in force and their version history, a change (validated,
//! stored with who/when/why/diff, applied live), a rollback, and a backtest of candidates against the current
//! rules over the stored readings. Reading is for operators, engineers and admins; changing and backtesting for
//! engineers and admins (grid workers get 403).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller};
use crate::auth::Role;
use crate::backtest::report::Report;
use crate::backtest::source::{self, Range, Stored};
use crate::backtest::{Backtest, Candidate, Settings};
use crate::central::rulebook::SiteRulesText;
use crate::store::rule_versions::RuleVersion;

/// Longest range one backtest request may replay.
pub const MAX_RANGE_DAYS: i64 = 31;

/// Backtests run from the API: one at a time, off the async runtime, read-only on the series store.
#[derive(Clone)]
pub struct Backtests {
    db: Stored,
    settings: Settings,
    slot: Arc<tokio::sync::Semaphore>,
}

impl Backtests {
    /// Backtests over the readings stored in `db`.
    pub fn new(db: Stored, settings: Settings) -> Self {
        Backtests { db, settings, slot: Arc::new(tokio::sync::Semaphore::new(1)) }
    }
}

/// `GET /api/v1/rulesets`
#[derive(Serialize)]
pub struct Rulesets {
    /// Newest version applied on this instance (0: the files only).
    pub applied: i64,
    /// Each site's rules in force.
    pub sites: Vec<SiteRulesText>,
    /// The last 50 versions, newest first.
    pub history: Vec<RuleVersion>,
}

/// `GET /api/v1/rulesets` (operator, engineer, admin)
pub async fn rulesets(State(s): State<AppState>, caller: Caller) -> Result<Json<Rulesets>, ApiError> {
    caller.require(&[Role::Operator, Role::Engineer, Role::Admin])?;
    Ok(Json(Rulesets {
        applied: s.rulebook.applied(),
        sites: s.rulebook.current().await?,
        history: s.rulebook.db().rule_versions(None, 50).await?,
    }))
}

/// A site's new rules.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Site id.
    pub site: String,
    /// The whole rules file.
    pub toml: String,
    /// Why (kept with the version).
    #[serde(default)]
    pub note: String,
}

/// What a change made.
#[derive(Serialize)]
pub struct Changed {
    /// The new version (in force on this instance now, on the others within seconds).
    pub version: i64,
}

/// `POST /api/v1/rulesets` (engineer, admin): 201, or 422 with every problem and nothing changed.
pub async fn change(
    State(s): State<AppState>,
    Caller(p): Caller,
    super::ApiJson(c): super::ApiJson<Change>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    Caller(p.clone()).require(&[Role::Engineer, Role::Admin])?;
    let version = s.rulebook.propose(&c.site, &c.toml, &p.name, &c.note).await?;
    Ok((StatusCode::CREATED, Json(Changed { version })))
}

/// `POST /api/v1/rulesets/check` (engineer, admin): `{"valid": true}` if `toml` would be accepted, else 422 with
/// every problem.
pub async fn check(
    State(s): State<AppState>,
    caller: Caller,
    super::ApiJson(c): super::ApiJson<Change>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Engineer, Role::Admin])?;
    s.rulebook.check(&c.site, &c.toml).await?;
    Ok(Json(serde_json::json!({ "valid": true })))
}

/// Why a rollback is made.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Kept with the new version.
    #[serde(default)]
    pub note: String,
}

/// `POST /api/v1/rulesets/{version}/rollback` (engineer, admin): the version's text again, as a new version.
pub async fn rollback(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(version): Path<i64>,
    super::ApiJson(r): super::ApiJson<Rollback>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    Caller(p.clone()).require(&[Role::Engineer, Role::Admin])?;
    let version = s.rulebook.rollback(version, &p.name, &r.note).await?;
    Ok((StatusCode::CREATED, Json(Changed { version })))
}

/// A candidate: one site's rules file (the other sites keep theirs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateText {
    /// Its name in the report (default `candidate-N`).
    #[serde(default)]
    pub name: Option<String>,
    /// Site id.
    pub site: String,
    /// The whole rules file.
    pub toml: String,
}

/// `POST /api/v1/backtest` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// Only this site's readings.
    #[serde(default)]
    pub site: Option<String>,
    /// Start (default: 24 h before `to`).
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// End (default: now).
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// Candidates against the rules in force.
    #[serde(default)]
    pub candidates: Vec<CandidateText>,
}

/// `POST /api/v1/backtest` (engineer, admin): the rules in force and each candidate over the stored readings.
/// Read-only and never notifies; one at a time (503 while another runs), at most [`MAX_RANGE_DAYS`].
pub async fn backtest(
    State(s): State<AppState>,
    caller: Caller,
    super::ApiJson(req): super::ApiJson<BacktestRequest>,
) -> Result<Json<Report>, ApiError> {
    caller.require(&[Role::Engineer, Role::Admin])?;
    let to = req.to.unwrap_or_else(Utc::now);
    let from = req.from.unwrap_or(to - Duration::hours(24));
    if from > to || to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::BadRequest(format!("from must be before to, at most {MAX_RANGE_DAYS} days apart")));
    }
    let mut sets = vec![Candidate { name: "current".into(), rules: s.rulebook.compiled().await? }];
    for (i, c) in req.candidates.iter().enumerate() {
        let rules = s.rulebook.check(&c.site, &c.toml).await?;
        sets.push(Candidate { name: c.name.clone().unwrap_or_else(|| format!("candidate-{}", i + 1)), rules });
    }
    let _permit = s
        .backtests
        .slot
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("a backtest is running; try again when it is done".into()))?;
    let (db, settings, sites) = (s.backtests.db.clone(), s.backtests.settings, s.sites.clone());
    let range = Range { from, to, site: req.site };
    let report = tokio::task::spawn_blocking(move || {
        let mut bt = Backtest::new(&sites, sets, settings);
        source::each_stored(&db, &range, |r| bt.feed(&r)).map(|_| bt.finish(range.to))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(report))
}
