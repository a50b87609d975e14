//! The HTTP server loop, with the limits `axum::serve` does not have: a client must send its request head within
//! `header_read_timeout_s`, at most `max_connections` are open (and `max_per_ip` from one address), so a crowd of
//! slow or half-sent requests cannot take every file descriptor and stop the API (or the store) from working. At
//! shutdown every connection is asked to finish its request and close; the event streams end themselves (see
//! `events.rs`), so this returns within seconds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// `[api]` connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeLimits {
    /// Open connections at most; more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one IP address at most; more are closed at once.
    #[serde(default = "default_max_per_ip")]
    pub max_per_ip: usize,
    /// A request head must arrive within this many seconds of the connection (or of the previous response).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_s: u64,
}

fn default_max_connections() -> usize {
    1024
}
fn default_max_per_ip() -> usize {
    128
}
fn default_header_timeout() -> u64 {
    10
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_per_ip: default_max_per_ip(),
            header_read_timeout_s: default_header_timeout(),
        }
    }
}

/// Connections per address.
#[derive(Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerIp {
    fn enter(&self, ip: IpAddr, max: usize) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// How the API serves connections.
pub struct Server {
    /// Connection limits.
    pub limits: ServeLimits,
    /// HTTPS when set (`[tls]`): the TLS handshake must also finish within the header timeout.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Counters.
    pub metrics: Metrics,
}

impl Server {
    /// Serves `app` on `listener` until `shutdown`, then lets open requests finish for up to `grace`.
    pub async fn serve(self, listener: TcpListener, app: Router, shutdown: CancellationToken, grace: Duration) {
        let Server { limits, tls, metrics } = self;
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let per_ip = PerIp::default();
        let graceful = GracefulShutdown::new();
        let head_timeout = Duration::from_secs(limits.header_read_timeout_s.max(1));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(head_timeout);
        let mut refused_logged = false;
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer): (_, SocketAddr) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: wait a little instead of spinning.
                        tracing::warn!(error = %e, "api accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if !per_ip.enter(peer.ip(), limits.max_per_ip) {
                metrics.http_refused.inc();
                if !refused_logged {
                    refused_logged = true;
                    tracing::warn!(peer = %peer.ip(), max_per_ip = limits.max_per_ip, "api connection refused: too many from one address (logged once; counted)");
                }
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            metrics.http_connections.inc();
            let done = Done {
                per_ip: per_ip.clone(),
                ip: peer.ip(),
                gauge: metrics.http_connections.clone(),
                _permit: permit,
            };
            let svc = TowerToHyperService::new(app.clone());
            match &tls {
                None => {
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, peer = %peer, "api connection ended with an error");
                        }
                        drop(done);
                    });
                }
                Some(acceptor) => {
                    let (acceptor, http, watcher) = (acceptor.clone(), http.clone(), graceful.watcher());
                    tokio::spawn(async move {
                        match tokio::time::timeout(head_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                let conn = watcher.watch(http.serve_connection(TokioIo::new(tls_stream), svc));
                                if let Err(e) = conn.await {
                                    tracing::debug!(error = %e, peer = %peer, "api connection ended with an error");
                                }
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, peer = %peer, "tls handshake failed"),
                            Err(_) => tracing::debug!(peer = %peer, "tls handshake timed out"),
                        }
                        drop(done);
                    });
                }
            }
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!(?grace, "api connections still open after the grace period; closing them");
        }
    }
}

/// Releases a connection's slot, its per-address count and the gauge when dropped.
struct Done {
    per_ip: PerIp,
    ip: IpAddr,
    gauge: prometheus::IntGauge,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.per_ip.leave(self.ip);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_counts_enter_and_leave() {
        let p = PerIp::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(p.enter(a, 2) && p.enter(a, 2));
        assert!(!p.enter(a, 2), "third refused");
        assert!(p.enter("127.0.0.1".parse().unwrap(), 2), "another address is not affected");
        p.leave(a);
        assert!(p.enter(a, 2));
    }
}
