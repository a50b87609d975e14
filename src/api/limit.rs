//! Per-token request rate (a token bucket each) and short-lived event-stream tickets.
//!
//! Why tickets: `EventSource` cannot send an `Authorization` header, and a long-lived token in a URL ends up in
//! proxy logs and browser history. A page exchanges its token (in the header) for a ticket that opens streams for
//! [`TICKET_TTL`] only; every other endpoint takes the header and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::auth::TokenRecord;

/// How long a stream ticket opens streams.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets outstanding at most (older ones are dropped first).
const MAX_TICKETS: usize = 10_000;
/// Buckets kept at most (idle ones are dropped first).
const MAX_BUCKETS: usize = 100_000;

/// Token buckets by token hash.
#[derive(Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl RateLimiter {
    /// `rate` requests per second sustained, bursts of `10 × rate`.
    pub fn new(rate: f64) -> Self {
        Self { rate, burst: (rate * 10.0).max(1.0), buckets: Arc::default() }
    }

    /// Sustained requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// True if `key` may make a request now (and takes one from its bucket).
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= MAX_BUCKETS && !b.contains_key(key) {
            // Full buckets are the same as no bucket: forget them.
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| *tokens + rate * now.duration_since(*at).as_secs_f64() < burst);
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + self.rate * now.duration_since(*at).as_secs_f64()).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Stream tickets: secret → (holder, expiry).
#[derive(Clone, Default)]
pub struct StreamTickets {
    inner: Arc<Mutex<HashMap<String, (TokenRecord, Instant)>>>,
}

impl StreamTickets {
    /// Issues a ticket for `holder`, valid for [`TICKET_TTL`].
    pub fn issue(&self, holder: TokenRecord) -> String {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let ticket = format!("cgs_{}", hex::encode(bytes));
        let now = Instant::now();
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, exp)| *exp > now);
        if m.len() >= MAX_TICKETS {
            if let Some(oldest) = m.iter().min_by_key(|(_, (_, exp))| *exp).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        m.insert(ticket.clone(), (holder, now + TICKET_TTL));
        ticket
    }

    /// The holder of a ticket still valid.
    pub fn redeem(&self, ticket: &str) -> Option<TokenRecord> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(ticket).filter(|(_, exp)| *exp > Instant::now()).map(|(r, _)| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let l = RateLimiter::new(2.0);
        let t0 = Instant::now();
        let allowed = (0..30).filter(|_| l.allow_at("a", t0)).count();
        assert_eq!(allowed, 20, "burst of 10 × rate");
        assert!(!l.allow_at("a", t0 + Duration::from_millis(400)), "0.8 of a token after 0.4 s");
        assert!(l.allow_at("a", t0 + Duration::from_millis(500)), "one token after 0.5 s");
        assert!(l.allow_at("b", t0), "another token has its own bucket");
    }

    #[test]
    fn tickets_are_redeemed_by_their_holder_only_while_valid() {
        let t = StreamTickets::default();
        let rec = TokenRecord { name: "ops".into(), role: Role::Operator, worker: None };
        let k = t.issue(rec.clone());
        assert!(k.starts_with("cgs_"));
        assert_eq!(t.redeem(&k), Some(rec));
        assert_eq!(t.redeem("cgs_forged"), None);
        t.inner.lock().unwrap().get_mut(&k).unwrap().1 = Instant::now() - Duration::from_secs(1);
        assert_eq!(t.redeem(&k), None, "expired");
    }
}
