//! Per-source health counters, shared between the sources and the publisher's status message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use crowdgrid_proto::{ModelInfo, SourceHealth};

/// Thread-safe registry of [`SourceHealth`] by source id.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, SourceHealth>>>,
    models: Arc<Mutex<BTreeMap<String, ModelInfo>>>,
    resent: Arc<AtomicU64>,
    acks_refused: Arc<AtomicU64>,
}

impl Health {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, id: &str, kind: &str, f: impl FnOnce(&mut SourceHealth) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of counters; keep counting.
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(id.to_string()).or_insert_with(|| SourceHealth {
            id: id.to_string(),
            kind: kind.to_string(),
            last_ok: None,
            accepted: 0,
            rejected: BTreeMap::new(),
            last_error: None,
        });
        f(entry)
    }

    /// Counts readings sent again for want of the centre's acknowledgement.
    pub fn note_resend(&self, n: u64) {
        self.resent.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refused commit acknowledgement (`reason` is logged by the caller).
    pub fn reject_ack(&self, _reason: &str) {
        self.acks_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// `(resent, acks_refused)` since start.
    pub fn delivery(&self) -> (u64, u64) {
        (self.resent.load(Ordering::Relaxed), self.acks_refused.load(Ordering::Relaxed))
    }

    /// Registers a source so it shows in the status even before its first record.
    pub fn register(&self, id: &str, kind: &str) {
        self.with(id, kind, |_| ());
    }

    /// Counts `n` accepted records.
    pub fn accepted(&self, id: &str, kind: &str, n: u64) {
        self.with(id, kind, |h| {
            h.accepted += n;
            h.last_ok = Some(Utc::now());
        });
    }

    /// Counts one rejected record. Logs the first occurrence of each reason per source at warn,
    /// later ones at debug, so a flood of bad input cannot flood the log.
    pub fn rejected(&self, id: &str, kind: &str, reason: &str, detail: &str) {
        let first = self.with(id, kind, |h| {
            let n = h.rejected.entry(reason.to_string()).or_insert(0);
            *n += 1;
            h.last_error = Some(format!("{reason}: {detail}"));
            *n == 1
        });
        if first {
            tracing::warn!(source = id, reason, detail, "record rejected (first of its kind; later ones counted)");
        } else {
            tracing::debug!(source = id, reason, detail, "record rejected");
        }
    }

    /// Records an input error (connection refused, unreadable file) without a reason counter.
    pub fn error(&self, id: &str, kind: &str, detail: &str) {
        self.rejected(id, kind, "input_error", detail);
    }

    /// A copy of every source's health, sorted by id.
    pub fn snapshot(&self) -> Vec<SourceHealth> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    /// Records the model a source loaded (reported in the edge status).
    pub fn model(&self, info: ModelInfo) {
        let mut map = self.models.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(info.source.clone(), info);
    }

    /// Every loaded model, by source id.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.models.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Total rejected for `id` and `reason` (tests and status).
    pub fn rejected_count(&self, id: &str, reason: &str) -> u64 {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).and_then(|h| h.rejected.get(reason).copied()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_source_and_reason() {
        let h = Health::new();
        h.register("a", "gate");
        h.accepted("a", "gate", 3);
        h.rejected("a", "gate", "negative", "-1");
        h.rejected("a", "gate", "negative", "-2");
        let snap = h.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].accepted, 3);
        assert_eq!(h.rejected_count("a", "negative"), 2);
        assert_eq!(snap[0].last_error.as_deref(), Some("negative: -2"));
    }
}
