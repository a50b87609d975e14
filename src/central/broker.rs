//! The embedded MQTT broker (rumqttd) on its own thread.
//!
//! With edge authentication required, a client must log in: an edge with username `{site}/{edge}`, a client id
//! that is its edge id (or starts with `{edge}-`) and one of its credentials in force as the password; the centre's
//! own clients as `crowdgrid-central` with the password derived from the master key. Anonymous clients are refused
//! at CONNECT. rumqttd has no per-topic ACL, so what a logged-in edge may *say* is enforced per message at the
//! centre (signed frames, `central::authn`), whichever broker carries it.
//!
//! Memory is bounded: each subscription filter keeps at most `SEGMENTS` segments of one largest payload each, and
//! the readings filter `READING_SEGMENTS` of `READING_SEGMENT_BYTES` (a burst of ~380,000 readings the centre has
//! not taken yet; rumqttd's example config keeps 10 × 100 MiB per filter, which a flood of rejected 1 MiB messages
//! fills). A subscriber further behind than its filter's log skips ahead: that costs the edges a resend (their
//! readings are deleted only on the centre's commit acknowledgement), never a reading.
//!
//! rumqttd's `Broker::start` blocks forever and reports a failed bind only in its log, so we check the
//! port ourselves first and then wait until it accepts TCP connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::tls::TlsConfig;
use crate::auth::edge_credentials::{Registry, CENTRE_ID};

/// Segments kept per subscription filter.
const SEGMENTS: usize = 4;
/// Segments of the readings filter (128 MiB in all: ~380,000 signed readings of ~350 B).
const READING_SEGMENTS: usize = 8;
/// Size of one segment of the readings filter.
const READING_SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// Who may connect to the embedded broker.
#[derive(Clone)]
pub struct BrokerAuth {
    /// Edge credentials in force.
    pub registry: Registry,
    /// The centre's own password.
    pub centre_password: String,
}

impl BrokerAuth {
    /// True if this CONNECT may proceed.
    pub fn allows(&self, client_id: &str, username: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        if username == CENTRE_ID {
            let ok: bool = self.centre_password.as_bytes().ct_eq(password.as_bytes()).into();
            return ok && client_id.starts_with(CENTRE_ID);
        }
        let Some((site, edge)) = username.split_once('/') else { return false };
        let own_id = client_id == edge || client_id.strip_prefix(edge).is_some_and(|r| r.starts_with('-'));
        own_id && self.registry.password_ok(site, edge, password)
    }
}

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not ours to bind.
    #[error("embedded broker cannot listen on {addr}: {source} (set [broker] listen to a free port)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The broker thread did not start listening in time.
    #[error("embedded broker did not start listening on {0} within 5 s")]
    NotReady(SocketAddr),
    /// The broker thread could not be spawned.
    #[error("cannot spawn the broker thread: {0}")]
    Thread(std::io::Error),
    /// The TLS files could not be used.
    #[error("embedded broker TLS: {0}")]
    Tls(String),
}

/// Builds the rumqttd configuration (its settings structs have no `Default`).
fn broker_config(
    listen: SocketAddr,
    max_payload_bytes: usize,
    auth: Option<BrokerAuth>,
    tls: Option<&TlsConfig>,
    prefix: &str,
) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: max_payload_bytes,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(auth) = auth {
        connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
            let ok = auth.allows(&client_id, &user, &pass);
            if !ok {
                tracing::warn!(client_id, user, "embedded broker refused a login");
            }
            std::future::ready(ok)
        });
    }
    let server = ServerSettings {
        name: "v4-crowdgrid".to_string(),
        listen,
        tls: tls.map(|t| rumqttd::TlsConfig::Rustls {
            capath: None,
            certpath: t.cert.display().to_string(),
            keypath: t.key.display().to_string(),
        }),
        next_connection_delay_ms: 1,
        connections,
    };
    let router = RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 500,
        max_segment_size: max_payload_bytes.max(1024 * 1024),
        max_segment_count: SEGMENTS,
        custom_segment: Some(HashMap::from([(
            crowdgrid_proto::topic::readings_filter(prefix),
            rumqttd::SegmentConfig {
                max_segment_size: READING_SEGMENT_BYTES.max(max_payload_bytes),
                max_segment_count: READING_SEGMENTS,
            },
        )])),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    Config { id: 0, router, v4: Some(HashMap::from([("1".to_string(), server)])), ..Default::default() }
}

/// Starts rumqttd on `listen` in a background thread and waits until it accepts connections.
/// The broker lives as long as the process (rumqttd has no stop): the centre's graceful shutdown
/// disconnects its clients and exits.
pub fn start_embedded(
    listen: SocketAddr,
    max_payload_bytes: usize,
    auth: Option<BrokerAuth>,
    tls: Option<&TlsConfig>,
    prefix: &str,
) -> Result<SocketAddr, BrokerError> {
    // Probe the address so a taken port is a clear error instead of a log line from a dead thread.
    drop(TcpListener::bind(listen).map_err(|source| BrokerError::Bind { addr: listen, source })?);
    let probe_login = auth.as_ref().map(|a| a.centre_password.clone());
    let probe_tls = match tls {
        Some(t) => Some(t.client_config().map_err(|e| BrokerError::Tls(e.to_string()))?),
        None => None,
    };
    let config = broker_config(listen, max_payload_bytes, auth, tls, prefix);
    std::thread::Builder::new()
        .name("rumqttd".to_string())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    for _ in 0..100 {
        if mqtt_ping(listen, probe_login.as_deref(), probe_tls.clone()).is_ok() {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(listen);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrokerError::NotReady(listen))
}

/// A real MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT exchange (a bare TCP probe makes rumqttd log an error),
/// logged in as the centre when the broker requires it, over TLS when it speaks TLS.
fn mqtt_ping(
    addr: SocketAddr,
    centre_password: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> std::io::Result<()> {
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))?;
    tcp.set_read_timeout(Some(Duration::from_millis(500)))?;
    match tls {
        Some(config) => {
            let name = rustls::pki_types::ServerName::from(addr.ip());
            let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            mqtt_exchange(&mut rustls::StreamOwned::new(conn, tcp), centre_password)
        }
        None => mqtt_exchange(&mut { tcp }, centre_password),
    }
}

fn mqtt_exchange(s: &mut (impl std::io::Read + std::io::Write), centre_password: Option<&str>) -> std::io::Result<()> {
    let id = format!("{CENTRE_ID}-probe");
    let field = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    // Variable header: protocol name, level 4, flags (clean session, + username/password), keep-alive 10 s.
    let flags = if centre_password.is_some() { 0xC2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 10];
    field(&mut body, id.as_bytes());
    if let Some(p) = centre_password {
        field(&mut body, CENTRE_ID.as_bytes());
        field(&mut body, p.as_bytes());
    }
    let mut pkt = vec![0x10];
    let mut len = body.len();
    loop {
        // MQTT's variable-length integer: 7 bits a byte, high bit = more follow.
        let byte = (len % 128) as u8;
        len /= 128;
        pkt.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    pkt.extend_from_slice(&body);
    s.write_all(&pkt)?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(std::io::Error::other("unexpected CONNACK"));
    }
    s.write_all(&[0xe0, 0x00])
}

/// A loopback address with a port that was free a moment ago (for tests and the demo).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}
