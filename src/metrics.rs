//! Prometheus metrics of the central service, on its own registry (several centres can run in one
//! test process without clashing).

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every metric the centre exports on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Payloads received on reading topics.
    pub readings_received: IntCounter,
    /// Readings written to the store.
    pub readings_stored: IntCounter,
    /// Readings rejected, by reason.
    pub readings_rejected: IntCounterVec,
    /// Readings dropped as duplicates (already stored for that source and sequence).
    pub readings_duplicate: IntCounter,
    /// Readings stored after a higher seq of their source had arrived.
    pub readings_reordered: IntCounter,
    /// Readings of a replaced (older) epoch, dropped.
    pub readings_stale: IntCounter,
    /// Commit acknowledgements published to edges.
    pub acks_sent: IntCounter,
    /// Readings waiting between the MQTT client and the processor.
    pub ingest_queue_depth: IntGauge,
    /// Readings handed to the store but not yet committed.
    pub store_pending: IntGauge,
    /// Time to commit one batch to SQLite.
    pub store_batch_seconds: Histogram,
    /// Store errors.
    pub store_errors: IntCounter,
    /// Tickets raised, by level.
    pub tickets_opened: IntCounterVec,
    /// Tickets resolved, by how.
    pub tickets_resolved: IntCounterVec,
    /// Notifications that could not be published.
    pub notify_errors: IntCounter,
    /// Edges currently online.
    pub edges_online: IntGauge,
    /// Cluster: sites this instance holds a lease on.
    pub cluster_sites: IntGauge,
    /// Cluster: sites this instance took over.
    pub cluster_takeovers: IntCounter,
    /// Open HTTP connections.
    pub http_connections: IntGauge,
    /// HTTP connections refused (too many from one address).
    pub http_refused: IntCounter,
    /// Requests refused by the per-token rate limit.
    pub http_rate_limited: IntCounter,
    /// Edge status messages rejected (malformed).
    pub status_rejected: IntCounter,
    /// Model downloads refused (unsigned, wrong key, stale time).
    pub model_requests_refused: IntCounter,
    /// Points written to InfluxDB.
    pub influx_written: IntCounter,
    /// Points waiting for InfluxDB.
    pub influx_buffered: IntGauge,
    /// Failed InfluxDB writes (retried).
    pub influx_errors: IntCounter,
    /// Points dropped because the InfluxDB buffer was full.
    pub influx_dropped: IntCounter,
    /// Whether the centre's MQTT client is connected.
    pub mqtt_connected: IntGauge,
    /// Webhook deliveries made.
    pub webhooks_delivered: IntCounter,
    /// Failed webhook attempts (retried).
    pub webhook_failures: IntCounter,
    /// Webhook deliveries not yet made.
    pub webhooks_pending: IntGauge,
    /// Tickets escalated, by tier reached.
    pub escalations: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("static metric {name}: {e}"));
    // Registration fails only on a duplicate name, which the fixed list below rules out.
    let _ = r.register(Box::new(c.clone()));
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])
        .unwrap_or_else(|e| unreachable!("static metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("static metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

impl Metrics {
    /// A fresh registry with every metric registered at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let store_batch_seconds = Histogram::with_opts(
            HistogramOpts::new("crowdgrid_store_batch_seconds", "Time to commit one batch of readings to SQLite")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
        )
        .unwrap_or_else(|e| unreachable!("static histogram: {e}"));
        let _ = r.register(Box::new(store_batch_seconds.clone()));
        let m = Self {
            readings_received: counter(&r, "crowdgrid_readings_received_total", "Payloads received on reading topics"),
            readings_stored: counter(&r, "crowdgrid_readings_stored_total", "Readings committed to the store"),
            readings_rejected: counter_vec(
                &r,
                "crowdgrid_readings_rejected_total",
                "Readings rejected, by reason",
                "reason",
            ),
            readings_duplicate: counter(&r, "crowdgrid_readings_duplicate_total", "Readings dropped as already stored"),
            readings_reordered: counter(
                &r,
                "crowdgrid_readings_reordered_total",
                "Readings stored after a higher seq of the same source",
            ),
            readings_stale: counter(&r, "crowdgrid_readings_stale_total", "Readings of an older epoch, dropped"),
            acks_sent: counter(&r, "crowdgrid_commit_acks_sent_total", "Commit acknowledgements published to edges"),
            ingest_queue_depth: gauge(&r, "crowdgrid_ingest_queue_depth", "Readings waiting for the processor"),
            store_pending: gauge(&r, "crowdgrid_store_pending", "Readings handed to the store, not yet committed"),
            store_batch_seconds,
            store_errors: counter(&r, "crowdgrid_store_errors_total", "Failed store transactions"),
            tickets_opened: counter_vec(&r, "crowdgrid_tickets_opened_total", "Tickets raised, by level", "level"),
            tickets_resolved: counter_vec(&r, "crowdgrid_tickets_resolved_total", "Tickets resolved, by how", "how"),
            notify_errors: counter(&r, "crowdgrid_notify_errors_total", "Ticket notifications that failed to publish"),
            edges_online: gauge(&r, "crowdgrid_edges_online", "Edge agents currently online"),
            cluster_sites: gauge(&r, "crowdgrid_cluster_sites", "Sites this instance holds a lease on (cluster)"),
            cluster_takeovers: counter(&r, "crowdgrid_cluster_takeovers_total", "Sites this instance took over"),
            http_connections: gauge(&r, "crowdgrid_http_connections", "Open HTTP connections"),
            http_refused: counter(
                &r,
                "crowdgrid_http_refused_total",
                "HTTP connections refused (too many from one address)",
            ),
            http_rate_limited: counter(&r, "crowdgrid_http_rate_limited_total", "API requests over the per-token rate"),
            status_rejected: counter(&r, "crowdgrid_edge_status_rejected_total", "Malformed edge status messages"),
            model_requests_refused: counter(
                &r,
                "crowdgrid_model_requests_refused_total",
                "Model downloads refused (not signed by the edge, stale or wrong key)",
            ),
            influx_written: counter(&r, "crowdgrid_influx_points_written_total", "Points written to InfluxDB"),
            influx_buffered: gauge(&r, "crowdgrid_influx_points_buffered", "Points waiting for InfluxDB"),
            influx_errors: counter(&r, "crowdgrid_influx_write_errors_total", "Failed InfluxDB writes (retried)"),
            influx_dropped: counter(
                &r,
                "crowdgrid_influx_points_dropped_total",
                "Points dropped: InfluxDB buffer full",
            ),
            mqtt_connected: gauge(
                &r,
                "crowdgrid_mqtt_connected",
                "Subscriber connections to the broker that are up (one per held site in a cluster)",
            ),
            webhooks_delivered: counter(&r, "crowdgrid_webhooks_delivered_total", "Webhook deliveries made"),
            webhook_failures: counter(&r, "crowdgrid_webhook_failures_total", "Failed webhook attempts (retried)"),
            webhooks_pending: gauge(&r, "crowdgrid_webhooks_pending", "Webhook deliveries not yet made"),
            escalations: counter_vec(&r, "crowdgrid_escalations_total", "Tickets escalated, by tier reached", "tier"),
            registry: r,
        };
        // Make the common rejection reasons visible at zero, so dashboards and tests see them before the first one.
        for reason in
            ["oversized", "malformed", "topic_mismatch", "unknown_zone", "negative", "not_finite", "future", "too_old"]
        {
            m.readings_rejected.with_label_values(&[reason]);
        }
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Counts one rejected reading.
    pub fn reject(&self, reason: &str) {
        self.readings_rejected.with_label_values(&[reason]).inc();
    }

    /// The current count of rejections for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.readings_rejected.with_label_values(&[reason]).get()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
