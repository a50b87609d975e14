//! Starting and stopping the central service.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::acker;
use super::authn::Authenticator;
use super::broker::BrokerAuth;
use super::broker::{self, BrokerError};
use super::cluster::{leases, live_fanout, partitions, Ownership};
use super::config::{BrokerConfig, LoadedCentral};
use super::dedup::Dedup;
use super::dispatch::{self, Dispatcher};
use super::edges::Edges;
use super::events::Events;
use super::evidence_in;
use super::ingest::{self, MqttSettings};
use super::live::Live;
use super::notify::{self, Notifier};
use super::process::Processor;
use super::resume::resume;
use super::rulebook::{Rulebook, RulebookError};
use super::tick;
use super::ticket_service::TicketService;
use super::validate::Validator;
use crate::api::{self, AppState};
use crate::auth::edge_credentials::{Authentication, Registry, CENTRE_ID};
use crate::central::camera_tuning::CameraTuning;
use crate::central::model_pool::ModelPool;
use crate::metrics::Metrics;
use crate::rules::Engine;
use crate::store::dispatch_db::DispatchDb;
use crate::store::evidence::EvidenceStore;
use crate::store::influx::{InfluxError, InfluxSink};
use crate::store::series::SeriesReader;
use crate::store::writer::{load_marks, StoreWriter, WriterSettings};
use crate::store::{schema, StoreError};

/// Why the centre could not start.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Embedded broker problem.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// InfluxDB client problem.
    #[error(transparent)]
    Influx(#[from] InfluxError),
    /// Rule files problem.
    #[error(transparent)]
    Rules(#[from] crowdgrid_proto::ConfigError),
    /// Edge credentials problem (master key, table).
    #[error(transparent)]
    Credentials(#[from] crate::auth::edge_credentials::CredentialError),
    /// TLS files problem.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The API address is not free.
    /// The model pool's manifest cannot be read.
    #[error("model pool: {0}")]
    ModelPool(String),
    #[error("cannot listen on {addr} for the API: {source}")]
    Api {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running centre.
pub struct Central {
    /// Where the API listens (the real port when configured with port 0).
    pub api_addr: SocketAddr,
    /// Where the broker is, as `(host, port)`.
    pub mqtt: (String, u16),
    /// Metrics (tests read counters directly).
    pub metrics: Metrics,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Central {
    /// A token that stops the centre when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops ingest, drains the processor, flushes the store and sink, stops the API.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until every task has finished (after the token is cancelled).
    pub async fn wait(self) {
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "central task failed");
            }
        }
        tracing::info!("central stopped");
    }
}

/// Starts every part of the centre and returns once the API and broker accept connections.
pub async fn start(loaded: LoadedCentral) -> Result<Central, CentralError> {
    let LoadedCentral { config, sites } = loaded;
    let cluster = config.cluster.clone();
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let prefix = config.broker.topic_prefix().to_string();
    let db = config.store.path.clone();

    // Store first: a bad path must fail before anything listens. In a cluster the marks are loaded per site, when
    // this instance takes the site over.
    let marks = {
        let path = db.clone();
        let shared = cluster.is_some();
        tokio::task::spawn_blocking(move || {
            let conn = schema::open(&path)?;
            if shared {
                Ok(Vec::new())
            } else {
                load_marks(&conn)
            }
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))??
    };
    let mut dedup = Dedup::default();
    dedup.load(marks);
    let dedup = Arc::new(Mutex::new(dedup));
    // The dispatch state: the same SQLite file, or PostgreSQL shared with other centre instances.
    let dispatch_db = DispatchDb::open(&db, config.store.dispatch_url.as_deref()).await?;
    tracing::info!(backend = dispatch_db.kind(), "dispatch state store");
    // A cluster shares the series and the leases in that PostgreSQL (validation made sure there is one).
    let shared = match (&cluster, &dispatch_db) {
        (Some(cfg), DispatchDb::Postgres(pool)) => {
            crate::store::pg_schema::apply(pool, crate::store::pg_series::SCHEMA).await?;
            crate::store::pg_schema::apply(pool, leases::SCHEMA).await?;
            let ttl_ms = (cfg.lease_s * 1000) as i64;
            Some((pool.clone(), leases::Leases::new(pool.clone(), &cfg.instance, ttl_ms), cfg.clone()))
        }
        _ => None,
    };
    let snapshot = match shared {
        Some(_) => None,
        None => dispatch_db.load_rule_state().await?,
    };
    let tickets = dispatch_db.tickets()?;
    let series = match &shared {
        Some((pool, ..)) => SeriesReader::Postgres(pool.clone()),
        None => SeriesReader::open(&db)?,
    };
    let evidence = EvidenceStore::open(&db)?;
    let tokens = dispatch_db.tokens()?;
    let outbox = dispatch_db.outbox()?;
    // Edge identities: the credentials in force, re-read every few seconds so a revocation needs no restart.
    let credentials = dispatch_db.edge_credentials(&config.edges.key_path(&db))?;
    match credentials.check_shared_key().await {
        // Without authentication no edge is checked against the key: say so, do not refuse to start.
        Err(e) if config.edges.authentication == Authentication::Off => tracing::warn!(error = %e, "edge master key"),
        other => other?,
    }
    let registry = Registry::default();
    let in_force = registry.reload(&credentials).await?;
    let auth_mode = config.edges.authentication;
    tracing::info!(credentials = in_force, authentication = ?auth_mode, "edge credentials loaded");
    let credentials_stop = CancellationToken::new();
    let (ack_tx, ack_rx) = mpsc::channel(64);
    let writer_settings =
        WriterSettings { batch_max: config.store.batch_max, retention_days: config.store.retention_days };
    let writer = match &shared {
        Some((pool, ..)) => StoreWriter::spawn_pg(pool.clone(), writer_settings, metrics.clone(), Some(ack_tx)),
        None => StoreWriter::spawn(&db, writer_settings, metrics.clone(), Some(ack_tx))?,
    };
    let influx = match &config.influx {
        Some(cfg) => Some(InfluxSink::spawn(cfg.clone(), metrics.clone())?),
        None => None,
    };

    // State resumed from the last snapshot and the open tickets.
    // Rules: each site's file (or its zones' thresholds), or the newest version changed through the API.
    let (ruleset, rules_version) = match Rulebook::initial(&sites, &config.rule_files, &dispatch_db).await {
        Ok(r) => r,
        Err(RulebookError::Store(e)) => return Err(e.into()),
        Err(RulebookError::Invalid(e)) => return Err(e.into()),
        Err(RulebookError::NotFound(m)) => return Err(CentralError::Store(StoreError::Join(m))),
    };
    let mut engine = Engine::new(ruleset);
    // In a cluster each site's state is resumed when this instance takes it over.
    let orphans = match shared {
        Some(_) => Vec::new(),
        None => resume(&mut engine, snapshot, &tickets.open_alerts().await?, None),
    };
    let engine = Arc::new(Mutex::new(engine));
    let rulebook =
        Rulebook::new(sites.clone(), config.rule_files.clone(), dispatch_db.clone(), engine.clone(), rules_version);

    let settings = match &config.broker {
        BrokerConfig::Embedded { listen, max_payload_bytes, .. } => {
            let centre_password = credentials.centre_password();
            let auth = (auth_mode == Authentication::Required)
                .then(|| BrokerAuth { registry: registry.clone(), centre_password: centre_password.clone() });
            let login = auth.is_some().then(|| (CENTRE_ID.to_string(), centre_password));
            let addr = broker::start_embedded(*listen, *max_payload_bytes, auth, config.tls.as_ref(), &prefix)?;
            MqttSettings {
                host: addr.ip().to_string(),
                port: addr.port(),
                client_id: CENTRE_ID.to_string(),
                credentials: login,
                prefix: prefix.clone(),
                max_packet: max_payload_bytes + 4096,
                ack_after_commit: false,
                tls: match &config.tls {
                    Some(t) => Some(t.client_config()?),
                    None => None,
                },
            }
        }
        BrokerConfig::External { host, port, client_id, username, password, tls_ca, .. } => MqttSettings {
            host: host.clone(),
            port: *port,
            client_id: client_id.clone(),
            // As `crowdgrid-central` without a password: the one `crowdgrid broker-acl` wrote for the centre.
            credentials: username.clone().map(|u| {
                let p = match password {
                    Some(p) => p.clone(),
                    None if u == CENTRE_ID => credentials.centre_password(),
                    None => String::new(),
                };
                (u, p)
            }),
            prefix: prefix.clone(),
            max_packet: 16 * 1024 * 1024,
            ack_after_commit: true,
            tls: match tls_ca {
                Some(ca) => Some(crowdgrid_edge::tls::client_config(ca)?),
                None => None,
            },
        },
    };

    // The notifier's client id must differ per instance: a cluster adds the instance's name.
    let settings = match &shared {
        Some((_, _, cfg)) => MqttSettings { client_id: format!("{}-{}", settings.client_id, cfg.instance), ..settings },
        None => settings,
    };
    let pool = {
        let cfg = config.models.clone();
        tokio::task::spawn_blocking(move || ModelPool::load(&cfg))
            .await
            .map_err(|e| CentralError::ModelPool(e.to_string()))?
            .map_err(CentralError::ModelPool)?
    };
    let live = Arc::new(RwLock::new(Live::new(&sites, chrono::Duration::seconds(config.rules.fused_fresh_s))));
    let edges = Edges::default();
    let events = Events::new(4096);
    // Notifications get their own connection: it stays up after ingest stops, until the dispatcher
    // has drained, so no ticket change is lost at shutdown.
    let (notifier_client, notifier_loop) =
        ingest::connect_as(&settings, &format!("{}-notify", settings.client_id), true);
    let notifier_stop = CancellationToken::new();
    let tick_stop = CancellationToken::new();
    let webhooks = Arc::new(config.notify.webhooks.clone());
    // This process among the instances sharing the dispatch database (its ticket changes reach their streams).
    let instance: Arc<str> =
        format!("{}-{}-{:08x}", settings.client_id, std::process::id(), rand::random::<u32>()).into();
    let fanout = match &dispatch_db {
        DispatchDb::Postgres(pool) => Some(crate::central::fanout::Fanout::new(pool.clone(), instance.clone())),
        DispatchDb::Sqlite(_) => None,
    };
    let notifier = Notifier {
        client: notifier_client.clone(),
        prefix: prefix.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        outbox: outbox.clone(),
        webhooks: webhooks.clone(),
        sites: sites.clone(),
        fanout,
    };
    let (in_tx, in_rx) = mpsc::channel(config.ingest.channel_capacity);
    let (act_tx, act_rx) = mpsc::channel(10_000);
    for ev in orphans {
        tracing::warn!(site = %ev.site, zone = %ev.zone, rule = %ev.rule, "re-raising an alert whose ticket was lost");
        let _ = act_tx.send(ev).await;
    }
    let validator = Validator::new(&prefix, &sites, config.ingest.limits(), config.ingest.max_payload_bytes);

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| CentralError::Api { addr: config.api.listen, source })?;
    let api_addr = listener.local_addr().map_err(|source| CentralError::Api { addr: config.api.listen, source })?;
    let cameras = CameraTuning::new(
        Arc::new(pool),
        dispatch_db.clone(),
        notifier_client.clone(),
        prefix.clone(),
        registry.clone(),
        auth_mode,
    );
    let camera_views = crate::central::camera_views::CameraViews::default();
    let ownership = match &shared {
        Some(_) => Ownership::Leased(Arc::new(RwLock::new(std::collections::HashMap::new()))),
        None => Ownership::All,
    };
    let state = AppState {
        ownership: ownership.clone(),
        cameras: cameras.clone(),
        camera_views: camera_views.clone(),
        sites: sites.clone(),
        live: live.clone(),
        engine: engine.clone(),
        edges: edges.clone(),
        series,
        evidence: evidence.clone(),
        tickets: tickets.clone(),
        tokens,
        metrics: metrics.clone(),
        notifier: notifier.clone(),
        events: events.clone(),
        escalation: config.escalation.clone(),
        tile_url: config.api.tile_url.clone(),
        sequences: dedup.clone(),
        shutdown: shutdown.clone(),
        streams: Arc::new(tokio::sync::Semaphore::new(config.api.max_event_streams)),
        stream_tickets: Default::default(),
        limiter: crate::api::limit::RateLimiter::new(config.api.rate_per_token),
        series_slots: Arc::new(tokio::sync::Semaphore::new(crate::api::SERIES_AT_ONCE)),
        rulebook: rulebook.clone(),
        ticket_service: TicketService::new(tickets.clone(), metrics.clone(), notifier.clone()),
        backtests: crate::api::tuning::Backtests::new(
            match &shared {
                Some((pool, ..)) => crate::backtest::source::Stored::Postgres(pool.clone()),
                None => crate::backtest::source::Stored::Sqlite(db.clone()),
            },
            crate::backtest::Settings {
                fused_fresh: chrono::Duration::seconds(config.rules.fused_fresh_s),
                reopen_window: chrono::Duration::seconds(config.escalation.reopen_window_s),
                tick: chrono::Duration::seconds(1),
            },
        ),
    };

    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::watch::channel(false);
    let (save_tx, save_rx) = evidence_in::channel();
    tasks.push(tokio::spawn(evidence_in::run(
        evidence_in::Intake {
            store: evidence,
            tickets: tickets.clone(),
            live: live.clone(),
            metrics: metrics.clone(),
            total_bytes: crate::store::evidence::TOTAL_BYTES,
        },
        save_rx,
    )));
    let handoff = ingest::Handoff {
        validator,
        tx: in_tx,
        metrics: metrics.clone(),
        authn: Authenticator::new(registry.clone(), auth_mode, &prefix),
        evidence: save_tx,
        views: camera_views,
    };
    tasks.push(tokio::spawn(registry.clone().keep_fresh(
        credentials,
        Duration::from_secs(config.edges.refresh_s),
        credentials_stop.clone(),
    )));
    let acker = tokio::spawn(acker::run(notifier_client.clone(), prefix.clone(), registry, metrics.clone(), ack_rx));
    match (&shared, &ownership) {
        (Some((pool, leases, cfg)), Ownership::Leased(held)) => {
            let coordinator = partitions::Coordinator {
                leases: leases.clone(),
                sites: sites.iter().map(|s| s.config.id.clone()).collect(),
                held: held.clone(),
                renew_every: cfg.renew_every(),
                lease: Duration::from_secs(cfg.lease_s),
                session_prefix: cfg.session_prefix.clone(),
                mqtt: settings.clone(),
                handoff,
                dedup: dedup.clone(),
                engine: engine.clone(),
                tickets: tickets.clone(),
                pool: pool.clone(),
                actions: act_tx.clone(),
                ready: ready_tx,
                metrics: metrics.clone(),
            };
            tasks.push(tokio::spawn(partitions::run(coordinator, shutdown.clone())));
        }
        _ => {
            let (client, eventloop) = ingest::connect(&settings);
            let filters = crowdgrid_proto::topic::centre_filters(&prefix, "+");
            let pause = CancellationToken::new();
            let ingest = ingest::Ingest {
                settings: settings.clone(),
                client,
                eventloop,
                filters,
                ready: ready_tx,
                handoff,
                pause,
            };
            tasks.push(tokio::spawn(ingest::run(ingest, shutdown.clone())));
        }
    }
    tasks.push(tokio::spawn(rulebook.run(shutdown.clone())));
    if let Some(url) = &config.store.dispatch_url {
        let (url, stop) = (url.clone(), shutdown.clone());
        tasks.push(tokio::spawn(crate::central::fanout::listen(
            url.clone(),
            instance.clone(),
            tickets.clone(),
            events.clone(),
            stop.clone(),
        )));
        if let Some((pool, ..)) = &shared {
            let mirror = live_fanout::Mirror {
                live: live.clone(),
                edges: edges.clone(),
                events: events.clone(),
                ownership: ownership.clone(),
            };
            tasks.push(tokio::spawn(live_fanout::listen(url, instance.clone(), mirror, stop.clone())));
            let (stream, owned) = (events.clone(), ownership.clone());
            tasks.push(tokio::spawn(live_fanout::announce(pool.clone(), instance, stream, owned, stop)));
        }
    }
    // Retained settings for every edge that has some (an embedded broker starts with none).
    tasks.push(tokio::spawn(async move { cameras.publish_all().await }));
    let (receipts, to_release) = mpsc::channel(256);
    tasks.push(tokio::spawn(ingest::release(to_release)));
    let processor = Processor {
        receipts,
        ownership: ownership.clone(),
        dedup: dedup.clone(),
        live,
        engine: engine.clone(),
        edges,
        writer,
        influx,
        actions: act_tx.clone(),
        events,
        batch_max: config.store.batch_max,
        metrics: metrics.clone(),
    };
    let processor_done = tick_stop.clone();
    tasks.push(tokio::spawn(async move {
        processor.run(in_rx).await;
        // The processor fed the engine until now: only then take the final snapshot.
        processor_done.cancel();
    }));
    let rule_state = match shared {
        Some((_, leases, _)) => tick::StateStore::PerSite { leases, ownership },
        None => tick::StateStore::Whole(dispatch_db),
    };
    tasks.push(tokio::spawn(tick::run(engine, act_tx, rule_state, Duration::from_secs(2), tick_stop)));
    let service = TicketService::new(tickets.clone(), metrics.clone(), notifier.clone());
    tasks.push(tokio::spawn(dispatch::sla_clock(service.clone(), config.escalation.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(notify::deliver_webhooks(
        outbox,
        tickets.clone(),
        webhooks,
        metrics.clone(),
        notifier_stop.clone(),
    )));
    let dispatcher =
        Dispatcher { sites, tickets: service, escalation: config.escalation.clone(), metrics: metrics.clone() };
    let dispatcher_done = notifier_stop.clone();
    tasks.push(tokio::spawn(async move {
        dispatcher.run(act_rx).await;
        // The last commit acknowledgements go out on the notifier's connection too: wait for them.
        if acker.await.is_err() {
            tracing::error!("acknowledger panicked");
        }
        credentials_stop.cancel();
        dispatcher_done.cancel();
    }));
    tasks.push(tokio::spawn(ingest::run_notifier(notifier_client, notifier_loop, notifier_stop)));
    let (api_shutdown, api_limits, api_metrics) = (shutdown.clone(), config.api.limits, metrics.clone());
    let api_tls = match &config.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(t.server_config()?)),
        None => None,
    };
    tasks.push(tokio::spawn(async move {
        let app = api::router(state);
        let server = api::serve::Server { limits: api_limits, tls: api_tls, metrics: api_metrics };
        server.serve(listener, app, api_shutdown, Duration::from_secs(5)).await;
    }));
    // Return once readings can be received: a publish before our subscription would be lost on a
    // broker that has no session for us yet. An unreachable external broker must not block startup.
    if tokio::time::timeout(Duration::from_secs(10), ready_rx.wait_for(|r| *r)).await.is_err() {
        tracing::warn!(host = %settings.host, port = settings.port, "not subscribed to the broker yet; continuing, ingest starts when it answers");
    }
    tracing::info!(api = %api_addr, mqtt = %format!("{}:{}", settings.host, settings.port), "central service started");
    Ok(Central { api_addr, mqtt: (settings.host, settings.port), metrics, shutdown, tasks })
}

/// Runs until SIGINT/SIGTERM, then stops gracefully within `grace`.
pub async fn run_until_signal(central: Central, grace: Duration) {
    crate::shutdown::signal().await;
    tracing::info!("shutting down: draining ingest, flushing the store");
    if tokio::time::timeout(grace, central.stop()).await.is_err() {
        tracing::warn!(?grace, "graceful shutdown did not finish in time");
    }
}
