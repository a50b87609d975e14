//! `[cluster]`: this instance's place among the centre instances that share PostgreSQL and a broker.

use crowdgrid_proto::config::{check_id, Problems};
use serde::{Deserialize, Serialize};

/// `[cluster]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's name, unique in the cluster: it holds the leases and is shown as their owner.
    pub instance: String,
    /// The per-site MQTT client ids are `{session_prefix}-{site}`, the same on every instance: the broker keeps a
    /// site's persistent session (its subscription and queued QoS 1 readings) for whichever instance owns the
    /// site next.
    #[serde(default = "default_session_prefix")]
    pub session_prefix: String,
    /// A lease not renewed for this long is free to take, seconds; renewed every third of it. A killed
    /// instance's sites are taken over after at most this plus one renewal.
    #[serde(default = "default_lease_s")]
    pub lease_s: u64,
}

fn default_session_prefix() -> String {
    "crowdgrid-site".into()
}

fn default_lease_s() -> u64 {
    6
}

impl ClusterConfig {
    /// Adds every problem to `p`.
    pub fn validate(&self, p: &mut Problems) {
        check_id(p, "cluster.instance", &self.instance);
        check_id(p, "cluster.session_prefix", &self.session_prefix);
        if !(3..=300).contains(&self.lease_s) {
            p.push("cluster.lease_s", "must be from 3 to 300");
        }
    }

    /// How often leases are renewed and the partitions balanced.
    pub fn renew_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_s * 1000 / 3)
    }
}
