//! Several centre instances as one: sites are partitioned among the instances by leases in PostgreSQL
//! ([`leases`]), and each instance subscribes to the sites it owns, each on the site's own persistent MQTT session
//! ([`partitions`]), so a site's readings are judged by exactly one rule engine and nothing published while the
//! site changes hands is lost: the broker queues it in the session for the next owner, and the edges resend
//! whatever was not acknowledged as committed. The series, the sequence marks and the rule state live in the
//! shared PostgreSQL (`store::pg_series`, [`leases::Leases::save_state`]), so the instance that takes a site over
//! continues where the last owner stopped and any instance's API serves any zone.

pub mod config;
pub mod leases;
pub mod live_fanout;
pub mod partitions;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The sites this instance judges, with their lease epochs; `All` without a cluster.
#[derive(Clone, Default)]
pub enum Ownership {
    /// A single centre: every site.
    #[default]
    All,
    /// A cluster instance: the sites it holds a lease on.
    Leased(Arc<RwLock<HashMap<String, i64>>>),
}

impl Ownership {
    /// Whether this instance judges `site`.
    pub fn owns(&self, site: &str) -> bool {
        match self {
            Ownership::All => true,
            Ownership::Leased(m) => m.read().unwrap_or_else(|e| e.into_inner()).contains_key(site),
        }
    }

    /// The leased sites with their epochs (`None` without a cluster).
    pub fn leased(&self) -> Option<Vec<(String, i64)>> {
        match self {
            Ownership::All => None,
            Ownership::Leased(m) => {
                let mut v: Vec<_> =
                    m.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(s, e)| (s.clone(), *e)).collect();
                v.sort();
                Some(v)
            }
        }
    }
}
