//! Wires an edge agent together: sources → fusion → queue → publisher, with a graceful stop that
//! lets each stage drain into the next.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::LoadedEdge;
use crate::evidence::EvidenceHub;
use crate::fusion::{self, Fusion};
use crate::health::Health;
use crate::publisher::{self, PublisherSettings};
use crate::queue::{QueueError, QueueHandle};
use crate::source::{SourceContext, SourceError};
use crate::tuning::TuningHub;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The queue file could not be opened.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// A source could not start.
    #[error("source {id}: {source}")]
    Source {
        id: String,
        #[source]
        source: SourceError,
    },
}

/// A running edge agent.
pub struct Agent {
    /// Addresses bound by webhook inputs, by source id.
    pub webhooks: Vec<(String, SocketAddr)>,
    /// The queue (tests look at its depth).
    pub queue: QueueHandle,
    /// Source health.
    pub health: Health,
    sources_stop: CancellationToken,
    publisher_stop: CancellationToken,
    sources: Vec<JoinHandle<()>>,
    fusion: JoinHandle<()>,
    publisher: JoinHandle<()>,
}

impl Agent {
    /// Starts every source, the fusion and the publisher.
    pub async fn start(loaded: LoadedEdge) -> Result<Agent, AgentError> {
        let LoadedEdge { config, site } = loaded;
        for (verdict, note) in config.notes(&site) {
            match verdict {
                crate::vision::georef::FitVerdict::Good => tracing::info!(edge = %config.edge.id, "{note}"),
                _ => tracing::warn!(edge = %config.edge.id, "{note}"),
            }
        }
        let site = Arc::new(site);
        let health = Health::new();
        let queue = QueueHandle::open(&config.queue, &config.mqtt.topic_prefix)?;
        let sources_stop = CancellationToken::new();
        let publisher_stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(4096);
        let evidence = EvidenceHub::default();
        let tuning = TuningHub::default();

        let mut sources = Vec::new();
        let mut webhooks = Vec::new();
        for s in &config.sources {
            let cx = SourceContext {
                edge_id: config.edge.id.clone(),
                site: site.clone(),
                mqtt: config.mqtt.clone(),
                out: tx.clone(),
                health: health.clone(),
                shutdown: sources_stop.child_token(),
                evidence: evidence.clone(),
                tuning: tuning.clone(),
            };
            let started = s.start(cx).await.map_err(|source| AgentError::Source { id: s.id().to_string(), source })?;
            if let Some(addr) = started.bound_addr {
                tracing::info!(source = s.id(), %addr, "webhook listening");
                webhooks.push((s.id().to_string(), addr));
            }
            sources.push(started.handle);
        }
        drop(tx);
        if !evidence.is_empty() {
            sources.push(tokio::spawn(crate::evidence::run(
                evidence,
                config.mqtt.clone(),
                config.edge.id.clone(),
                site.config.id.clone(),
                health.clone(),
                sources_stop.child_token(),
            )));
        }

        if !tuning.is_empty() {
            let listener = crate::tuning::listen::Listener {
                mqtt: config.mqtt.clone(),
                identity: crate::identity::Identity::new(&site.config.id, &config.edge.id, &config.mqtt),
                centre_api: config.tuning.centre_api.clone(),
                cache: config.model_cache(),
                health: health.clone(),
            };
            sources.push(tokio::spawn(crate::tuning::listen::run(tuning, listener, sources_stop.child_token())));
        }

        let stale = chrono::Duration::seconds(config.fusion.stale_after_s as i64);
        let fusion_state = Fusion::new(site.clone(), &config.edge.id, stale);
        let sink_queue = queue.clone();
        let fusion = tokio::spawn(fusion::run(
            config.fusion.clone(),
            fusion_state,
            rx,
            move |batch| {
                let q = sink_queue.clone();
                async move {
                    let n = batch.len();
                    match q.push(batch).await {
                        // The queue logs the start and end of an overflow episode and counts every drop; a line
                        // per batch would flood the log of a box that is offline for hours.
                        Ok(o) if o.dropped > 0 => tracing::debug!(dropped = o.dropped, "queue over budget"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, readings = n, "cannot queue readings"),
                    }
                }
            },
            sources_stop.clone(),
        ));

        let settings = PublisherSettings {
            mqtt: config.mqtt.clone(),
            edge_id: config.edge.id.clone(),
            site_id: site.config.id.clone(),
            inflight: config.queue.inflight,
            drain_grace: Duration::from_secs(5),
        };
        let pub_queue = queue.clone();
        let pub_health = health.clone();
        let pub_stop = publisher_stop.clone();
        let publisher = tokio::spawn(async move {
            if let Err(e) = publisher::run(settings, pub_queue, pub_health, pub_stop).await {
                tracing::error!(error = %e, "publisher stopped");
            }
        });
        tracing::info!(edge = %config.edge.id, site = %site.config.id, sources = config.sources.len(), "edge agent started");
        Ok(Agent { webhooks, queue, health, sources_stop, publisher_stop, sources, fusion, publisher })
    }

    /// Starts the agent and runs it until SIGINT or SIGTERM, then drains the sources into the queue (at most
    /// 15 s; what was not sent stays queued for the next start): `crowdgrid-edge run` and `crowdgrid edge`.
    pub async fn run_until_signal(loaded: LoadedEdge) -> Result<(), AgentError> {
        let agent = Agent::start(loaded).await?;
        crate::shutdown::signal().await;
        tracing::info!("shutting down: draining sources into the queue");
        if tokio::time::timeout(Duration::from_secs(15), agent.stop()).await.is_err() {
            tracing::warn!("edge shutdown did not finish in 15 s; the queue keeps what was not sent");
        }
        Ok(())
    }

    /// Stops the sources, lets fusion queue what they produced, then lets the publisher drain.
    pub async fn stop(self) {
        self.sources_stop.cancel();
        for s in self.sources {
            let _ = s.await;
        }
        let _ = self.fusion.await;
        self.publisher_stop.cancel();
        let _ = self.publisher.await;
        tracing::info!(left_in_queue = self.queue.depth(), "edge agent stopped");
    }
}
