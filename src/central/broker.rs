//! The embedded MQTT broker (rumqttd) on its own thread.
//!
//! rumqttd's `Broker::start` blocks forever and reports a failed bind only in its log, so we check the
//! port ourselves first and then wait until it accepts TCP connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

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
}

/// Builds the rumqttd configuration (its settings structs have no `Default`).
fn broker_config(listen: SocketAddr, max_payload_bytes: usize) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: max_payload_bytes,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4-crowdgrid".to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 500,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    Config { id: 0, router, v4: Some(HashMap::from([("1".to_string(), server)])), ..Default::default() }
}

/// Starts rumqttd on `listen` in a background thread and waits until it accepts connections.
/// The broker lives as long as the process (rumqttd has no stop): the centre's graceful shutdown
/// disconnects its clients and exits.
pub fn start_embedded(listen: SocketAddr, max_payload_bytes: usize) -> Result<SocketAddr, BrokerError> {
    // Probe the address so a taken port is a clear error instead of a log line from a dead thread.
    drop(TcpListener::bind(listen).map_err(|source| BrokerError::Bind { addr: listen, source })?);
    let config = broker_config(listen, max_payload_bytes);
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
        if mqtt_ping(listen).is_ok() {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(listen);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrokerError::NotReady(listen))
}

/// A real MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT exchange (a bare TCP probe makes rumqttd log an error).
fn mqtt_ping(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let id = b"crowdgrid-probe";
    let mut pkt = vec![0x10, (12 + id.len()) as u8, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, id.len() as u8];
    pkt.extend_from_slice(id);
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
