//! Wall-clock work of the rule engine: `tick` (silent sources, schedule windows, clear timers) once a
//! second, and saving its state so a restart resumes pending timers and active alerts. In a cluster the engine
//! knows every site but judges only those this instance holds: events of the others are dropped, and each held
//! site's state is saved on its own, fenced by its lease (`cluster::leases`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cluster::leases::Leases;
use super::cluster::Ownership;
use crate::rules::{Engine, RuleEvent, Snapshot};
use crate::store::dispatch_db::DispatchDb;

/// Where the engine's state is saved.
#[derive(Clone)]
pub enum StateStore {
    /// One snapshot of every site in the dispatch database.
    Whole(DispatchDb),
    /// One snapshot per held site, in the cluster's PostgreSQL.
    PerSite { leases: Leases, ownership: Ownership },
}

/// Ticks the engine every second and saves its state every `save_every` (and once more at stop).
pub async fn run(
    engine: Arc<Mutex<Engine>>,
    actions: mpsc::Sender<RuleEvent>,
    state: StateStore,
    save_every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_save = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let fired = engine.lock().unwrap_or_else(|e| e.into_inner()).tick(Utc::now());
        for ev in fired {
            if let StateStore::PerSite { ownership, .. } = &state {
                if !ownership.owns(&ev.site) {
                    continue;
                }
            }
            if actions.send(ev).await.is_err() {
                return;
            }
        }
        if last_save.elapsed() >= save_every {
            last_save = tokio::time::Instant::now();
            save(&engine, &state).await;
        }
    }
    save(&engine, &state).await;
}

/// Saves the engine's snapshot (SQLite off the async runtime).
pub async fn save(engine: &Arc<Mutex<Engine>>, state: &StateStore) {
    let snapshot = engine.lock().unwrap_or_else(|e| e.into_inner()).snapshot();
    match state {
        StateStore::Whole(db) => {
            if let Err(e) = db.save_rule_state(snapshot).await {
                tracing::error!(error = %e, "cannot save rule state");
            }
        }
        StateStore::PerSite { leases, ownership } => {
            // Split once, not filtered per site: an instance may hold dozens of sites.
            let version = snapshot.version;
            let mut parts = snapshot.by_site();
            for (site, epoch) in ownership.leased().unwrap_or_default() {
                // A site with nothing saved is saved empty: its last owner's state must not come back.
                let part = parts.remove(&site).unwrap_or_else(|| Snapshot { version, ..Snapshot::default() });
                if let Err(e) = leases.save_state(&site, epoch, &part).await {
                    tracing::error!(site, error = %e, "cannot save the site's rule state");
                }
            }
        }
    }
}
