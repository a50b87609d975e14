//! Wall-clock work of the rule engine: `tick` (silent sources, schedule windows, clear timers) once a
//! second, and saving its state so a restart resumes pending timers and active alerts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::rules::{Engine, RuleEvent};
use crate::store::dispatch_db::DispatchDb;

/// Ticks the engine every second and saves its state every `save_every` (and once more at stop).
pub async fn run(
    engine: Arc<Mutex<Engine>>,
    actions: mpsc::Sender<RuleEvent>,
    db: DispatchDb,
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
            if actions.send(ev).await.is_err() {
                return;
            }
        }
        if last_save.elapsed() >= save_every {
            last_save = tokio::time::Instant::now();
            save(&engine, &db).await;
        }
    }
    save(&engine, &db).await;
}

/// Saves the engine's snapshot (SQLite off the async runtime).
pub async fn save(engine: &Arc<Mutex<Engine>>, db: &DispatchDb) {
    let snapshot = engine.lock().unwrap_or_else(|e| e.into_inner()).snapshot();
    if let Err(e) = db.save_rule_state(snapshot).await {
        tracing::error!(error = %e, "cannot save rule state");
    }
}
