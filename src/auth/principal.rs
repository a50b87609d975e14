//! Who is calling, and what they may see and do.

use std::sync::Arc;

use crowdgrid_proto::site::Site;
use serde::Serialize;

use super::{Role, TokenRecord};
use crate::store::tickets::Ticket;

/// An authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// Token holder's name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// For grid workers: their worker id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// For grid workers: the `(site, grid)` pairs they cover, from the rosters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<(String, String)>,
}

impl Principal {
    /// Resolves a token record against the site rosters.
    pub fn new(rec: TokenRecord, sites: &[Arc<Site>]) -> Principal {
        let mut grids = Vec::new();
        if let Some(w) = &rec.worker {
            for s in sites {
                for worker in s.config.workers.iter().filter(|x| &x.id == w) {
                    grids.extend(worker.grids.iter().map(|g| (s.config.id.clone(), g.clone())));
                }
            }
        }
        Principal { name: rec.name, role: rec.role, worker: rec.worker, grids }
    }

    /// True for roles that read every site and grid.
    pub fn reads_all(&self) -> bool {
        self.role != Role::GridWorker
    }

    /// May read things of `grid` in `site`.
    pub fn sees_grid(&self, site: &str, grid: &str) -> bool {
        self.reads_all() || self.grids.iter().any(|(s, g)| s == site && g == grid)
    }

    /// May act on `ticket` (acknowledge, on site, resolve, escalate): operators and admins on any, a grid worker
    /// on the ones assigned to them, an engineer on engineers' tickets.
    pub fn may_act_on(&self, ticket: &Ticket) -> bool {
        match self.role {
            Role::Operator | Role::Admin => true,
            Role::GridWorker => self.worker.is_some() && ticket.assignee == self.worker,
            // Engineers close their own loop: the tickets addressed to them (data quality, offline edges).
            Role::Engineer => ticket.audience == "engineer",
        }
    }

    /// The name recorded in audit trails.
    pub fn actor(&self) -> String {
        match &self.worker {
            Some(w) => w.clone(),
            None => format!("{}:{}", self.role.as_str(), self.name),
        }
    }
}
