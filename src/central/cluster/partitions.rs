//! The partition loop of one instance. Every [`ClusterConfig::renew_every`] it says it is alive, renews its
//! leases, and balances: with `n` instances alive each holds at most `ceil(sites / n)` sites, so when one dies
//! the others take its sites once its leases expire, and when it comes back they hand some back.
//!
//! Taking a site over: its sources' sequence marks and its rule state (the last owner's snapshot, the open
//! tickets) are loaded from PostgreSQL before the first reading, then the instance connects with the site's
//! persistent session (`{session_prefix}-{site}`) and subscribes; the broker delivers what it queued meanwhile.
//! Handing a site back: unsubscribe (the session stays at the broker, queueing), wait until everything received
//! is committed (a barrier through the processor and the store writer), save the rule state, release the lease.
//! A lease found expired at renewal is dropped at once, without saving: another instance may hold it already.
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
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the partition loop until `shutdown`, then hands every site back and leaves the cluster.
pub async fn run(c: Coordinator, shutdown: CancellationToken) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tick = tokio::time::interval(c.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
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
        if let Err(e) = round(&c, &mut running).await {
            tracing::warn!(error = %e, "lease round failed; retrying (leases held stay until they expire)");
        }
        c.ready.send_replace(true);
    }
    let mut sites: Vec<String> = running.keys().cloned().collect();
    sites.sort();
    for site in sites {
        if let Some(r) = running.remove(&site) {
            hand_back(&c, &site, r).await;
        }
    }
    if let Err(e) = c.leases.leave().await {
        tracing::warn!(error = %e, "cannot leave the cluster cleanly; the others notice within a lease time");
    }
    tracing::info!("cluster: every site handed back");
}

async fn round(c: &Coordinator, running: &mut HashMap<String, Running>) -> Result<(), StoreError> {
    let alive = c.leases.heartbeat().await?;
    let held = c.leases.renew().await?;
    let lost: Vec<String> =
        running.iter().filter(|(s, r)| held.get(*s) != Some(&r.epoch)).map(|(s, _)| s.clone()).collect();
    for site in lost {
        if let Some(r) = running.remove(&site) {
            tracing::warn!(site, epoch = r.epoch, "lease lost (not renewed in time): stopping the site at once");
            c.held.write().unwrap_or_else(|e| e.into_inner()).remove(&site);
            r.stop.cancel();
            let _ = r.task.await;
        }
    }
    let target = c.sites.len().div_ceil(alive);
    if running.len() > target {
        let mut mine: Vec<String> = running.keys().cloned().collect();
        mine.sort();
        for site in mine.into_iter().rev().take(running.len() - target) {
            if let Some(r) = running.remove(&site) {
                hand_back(c, &site, r).await;
            }
        }
    } else if running.len() < target {
        for (site, epoch) in c.leases.acquire(&c.sites, target - running.len()).await? {
            match take_over(c, &site, epoch).await {
                Ok(r) => {
                    running.insert(site, r);
                }
                Err(e) => {
                    tracing::warn!(site, error = %e, "cannot take the site over; releasing it");
                    c.leases.release(&site, epoch).await?;
                }
            }
        }
    }
    c.metrics.cluster_sites.set(running.len() as i64);
    Ok(())
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
    let (ready, mut subscribed) = watch::channel(false);
    let filters = topic::centre_filters(&settings.prefix, site);
    let ingest = Ingest { settings, client, eventloop, filters, ready, handoff: c.handoff.clone() };
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest::run(ingest, stop.clone()));
    let ok = tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|r| *r)).await.is_ok();
    c.metrics.cluster_takeovers.inc();
    tracing::info!(site, epoch, subscribed = ok, took_ms = started.elapsed().as_millis() as u64, "site taken over");
    Ok(Running { epoch, stop, task })
}

async fn hand_back(c: &Coordinator, site: &str, r: Running) {
    r.stop.cancel();
    let _ = r.task.await;
    // Everything this site's connection handed over, committed (so acknowledged) before the next owner starts.
    let (barrier, flushed) = oneshot::channel();
    if c.handoff.tx.send(Incoming::Flush(barrier)).await.is_ok()
        && tokio::time::timeout(Duration::from_secs(10), flushed).await.is_err()
    {
        tracing::warn!(site, "store did not confirm within 10 s; the next owner de-duplicates what edges resend");
    }
    c.held.write().unwrap_or_else(|e| e.into_inner()).remove(site);
    let snapshot = c.engine.lock().unwrap_or_else(|e| e.into_inner()).snapshot().of(site);
    match c.leases.save_state(site, r.epoch, &snapshot).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(site, "lease gone before the rule state was saved; the next owner has its own"),
        Err(e) => tracing::warn!(site, error = %e, "cannot save the site's rule state"),
    }
    if let Err(e) = c.leases.release(site, r.epoch).await {
        tracing::warn!(site, error = %e, "cannot release the lease; it expires on its own");
    }
    tracing::info!(site, epoch = r.epoch, "site handed back");
}
