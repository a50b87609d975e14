//! The partition loop of one instance. Every [`ClusterConfig::renew_every`] it says it is alive, renews its
//! leases, and balances: with `n` instances alive each holds at most `ceil(sites / n)` sites, so when one dies
//! the others take its sites once its leases expire, and when it comes back they hand some back.
//!
//! Taking a site over: its sources' sequence marks and its rule state (the last owner's snapshot, the open
//! tickets) are loaded from PostgreSQL before the first reading, then the instance connects with the site's
//! persistent session (`{session_prefix}-{site}`) and subscribes; the broker delivers what it queued meanwhile.
//! Handing sites back (all at once, whether rebalancing or stopping): pause their connections (what arrives now is
//! left unacknowledged, for the next owner), wait until everything handed over before is committed and
//! acknowledged (one barrier through the processor, the store writer and the receipts), disconnect (the session
//! stays at the broker, queueing), save the rule state, release the leases. A lease found expired at renewal is
//! dropped at once, without saving: another instance may hold it already. So is every lease when the leases
//! could not be renewed for most of a lease time (the database is unreachable): an instance that cannot prove
//! it still owns a site stops judging it before another may take it.
//!
//! [`ClusterConfig::renew_every`]: super::config::ClusterConfig::renew_every

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crowdgrid_proto::topic;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::leases::Leases;
use crate::central::dedup::Dedup;
use crate::central::ingest::{self, Handoff, Incoming, Ingest, MqttSettings};
use crate::central::resume::resume;
use crate::metrics::Metrics;
use crate::rules::{Engine, RuleEvent};
use crate::store::tickets::TicketStore;
use crate::store::{pg_series, StoreError};

/// Everything the partition loop works with.
pub struct Coordinator {
    /// This instance's leases.
    pub leases: Leases,
    /// Every site of the configuration.
    pub sites: Vec<String>,
    /// The sites held, shared with the tick, the fan-out and the API (`Ownership::Leased`).
    pub held: Arc<RwLock<HashMap<String, i64>>>,
    /// Renewal period.
    pub renew_every: Duration,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Per-site client ids are `{session_prefix}-{site}`.
    pub session_prefix: String,
    /// The broker (host, credentials, prefix, TLS); the client id is replaced per site.
    pub mqtt: MqttSettings,
    /// Where the sites' connections hand what they receive (the processor).
    pub handoff: Handoff,
    /// Sequence marks.
    pub dedup: Arc<Mutex<Dedup>>,
    /// The rule engine.
    pub engine: Arc<Mutex<Engine>>,
    /// Open tickets (to resume alerts).
    pub tickets: TicketStore,
    /// The shared store (marks).
    pub pool: deadpool_postgres::Pool,
    /// Alerts to raise again after a takeover.
    pub actions: mpsc::Sender<RuleEvent>,
    /// Set after the first round.
    pub ready: watch::Sender<bool>,
    /// Counters.
    pub metrics: Metrics,
}

struct Running {
    epoch: i64,
    pause: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Sites taken over in one round at most (each loads its state from PostgreSQL; the round must end well within a
/// lease time, the leases are renewed only between rounds).
const TAKE_PER_ROUND: usize = 16;

/// Runs the partition loop until `shutdown`, then hands every site back and leaves the cluster.
pub async fn run(c: Coordinator, shutdown: CancellationToken) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tick = tokio::time::interval(c.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !registered {
            match c.leases.register(&c.sites).await {
                Ok(()) => registered = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register the sites' leases; retrying");
                    continue;
                }
            }
        }
        if let Err(e) = round(&c, &mut running, &mut renewed).await {
            tracing::warn!(error = %e, "lease round failed; retrying");
            if !running.is_empty() && renewed.elapsed() + c.renew_every >= c.lease {
                tracing::error!("leases not renewed for most of a lease time: stopping every site held");
                let all: Vec<String> = running.keys().cloned().collect();
                drop_lost(&c, &mut running, all).await;
            }
        }
        c.ready.send_replace(true);
    }
    let all: Vec<(String, Running)> = running.drain().collect();
    hand_back(&c, all).await;
    if let Err(e) = c.leases.leave().await {
        tracing::warn!(error = %e, "cannot leave the cluster cleanly; the others notice within a lease time");
    }
    tracing::info!("cluster: every site handed back");
}

async fn round(
    c: &Coordinator,
    running: &mut HashMap<String, Running>,
    renewed: &mut Instant,
) -> Result<(), StoreError> {
    let alive = c.leases.heartbeat().await?;
    let mine: Vec<String> = running.keys().cloned().collect();
    let held = c.leases.renew(&mine).await?;
    *renewed = Instant::now();
    let lost: Vec<String> =
        running.iter().filter(|(s, r)| held.get(*s) != Some(&r.epoch)).map(|(s, _)| s.clone()).collect();
    drop_lost(c, running, lost).await;
    let target = c.sites.len().div_ceil(alive);
    if running.len() > target {
        let mut mine: Vec<String> = running.keys().cloned().collect();
        mine.sort();
        let extra = mine.into_iter().rev().take(running.len() - target);
        let back: Vec<(String, Running)> = extra.filter_map(|s| running.remove(&s).map(|r| (s, r))).collect();
        hand_back(c, back).await;
    } else if running.len() < target {
        let want = (target - running.len()).min(TAKE_PER_ROUND);
        for (site, epoch) in c.leases.acquire(&c.sites, want).await? {
            match take_over(c, &site, epoch).await {
                Ok(r) => {
                    running.insert(site, r);
                }
                Err(e) => {
                    tracing::warn!(site, error = %e, "cannot take the site over; releasing it");
                    if let Err(e) = c.leases.release(&site, epoch).await {
                        tracing::warn!(site, error = %e, "cannot release the lease; it expires on its own");
                    }
                }
            }
        }
    }
    c.metrics.cluster_sites.set(running.len() as i64);
    Ok(())
}

/// Stops serving `sites` at once, without saving anything: their leases are (or may be) someone else's.
async fn drop_lost(c: &Coordinator, running: &mut HashMap<String, Running>, sites: Vec<String>) {
    for site in sites {
        if let Some(r) = running.remove(&site) {
            tracing::warn!(site, epoch = r.epoch, "lease lost (not renewed in time): stopping the site at once");
            c.held.write().unwrap_or_else(|e| e.into_inner()).remove(&site);
            r.stop.cancel();
            let _ = r.task.await;
        }
    }
    c.metrics.cluster_sites.set(running.len() as i64);
}

async fn take_over(c: &Coordinator, site: &str, epoch: i64) -> Result<Running, StoreError> {
    let started = Instant::now();
    let marks = pg_series::load_marks(&c.pool, Some(site)).await?;
    let snapshot = c.leases.load_state(site).await?;
    let open = c.tickets.open_alerts().await?;
    let again = {
        c.dedup.lock().unwrap_or_else(|e| e.into_inner()).load(marks);
        let mut engine = c.engine.lock().unwrap_or_else(|e| e.into_inner());
        resume(&mut engine, snapshot, &open, Some(site))
    };
    for ev in again {
        tracing::warn!(site = %ev.site, zone = %ev.zone, rule = %ev.rule, "re-raising an alert whose ticket was lost");
        let _ = c.actions.send(ev).await;
    }
    c.held.write().unwrap_or_else(|e| e.into_inner()).insert(site.to_string(), epoch);
    let mut settings = c.mqtt.clone();
    settings.client_id = format!("{}-{site}", c.session_prefix);
    let (client, eventloop) = ingest::connect(&settings);
    // Not waiting for the subscription: the round must stay short (the broker's session has queued meanwhile).
    let (ready, _) = watch::channel(false);
    let filters = topic::centre_filters(&settings.prefix, site);
    let (pause, stop) = (CancellationToken::new(), CancellationToken::new());
    let ingest =
        Ingest { settings, client, eventloop, filters, ready, handoff: c.handoff.clone(), pause: pause.clone() };
    let task = tokio::spawn(ingest::run(ingest, stop.clone()));
    c.metrics.cluster_takeovers.inc();
    tracing::info!(site, epoch, took_ms = started.elapsed().as_millis() as u64, "site taken over");
    Ok(Running { epoch, pause, stop, task })
}

async fn hand_back(c: &Coordinator, sites: Vec<(String, Running)>) {
    if sites.is_empty() {
        return;
    }
    for (_, r) in &sites {
        r.pause.cancel();
    }
    // Everything those connections handed over, committed and acknowledged before they disconnect: the next owner
    // is delivered only what this instance did not store. Bounded by a renewal period (the leases are not renewed
    // meanwhile); past it the next owner de-duplicates what it is delivered again.
    let (barrier, flushed) = oneshot::channel();
    if c.handoff.tx.send(Incoming::Flush(barrier)).await.is_ok()
        && tokio::time::timeout(c.renew_every, flushed).await.is_err()
    {
        tracing::warn!(sites = sites.len(), "store did not confirm in time; the next owners de-duplicate the rest");
    }
    for (_, r) in &sites {
        r.stop.cancel();
    }
    let snapshot = c.engine.lock().unwrap_or_else(|e| e.into_inner()).snapshot();
    for (site, r) in sites {
        let _ = r.task.await;
        c.held.write().unwrap_or_else(|e| e.into_inner()).remove(&site);
        match c.leases.save_state(&site, r.epoch, &snapshot.of(&site)).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(site, "lease gone before the rule state was saved; the next owner has its own"),
            Err(e) => tracing::warn!(site, error = %e, "cannot save the site's rule state"),
        }
        if let Err(e) = c.leases.release(&site, r.epoch).await {
            tracing::warn!(site, error = %e, "cannot release the lease; it expires on its own");
        }
        tracing::info!(site, epoch = r.epoch, "site handed back");
    }
    c.metrics.cluster_sites.set(c.held.read().unwrap_or_else(|e| e.into_inner()).len() as i64);
}
