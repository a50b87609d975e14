//! `[escalation]` (the SLA of each ticket level and of engineers' tickets, the reopen window, how often the SLA
//! clock looks) and `[notify]` (webhooks), beside the rest of central.toml in [`super`].

use serde::{Deserialize, Serialize};

/// Deadlines for one ticket level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// The grid worker must acknowledge within this, or the community (社村) takes it.
    pub ack_s: i64,
    /// It must be resolved within this (from raising), or the sub-district (街镇) takes it.
    pub resolve_s: i64,
    /// The sub-district has this long before the whistle summons the responsible department.
    pub subdistrict_s: i64,
}

/// `[escalation]`: SLAs per level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// A ticket closed less than this long ago reopens instead of a new one being raised.
    #[serde(default = "default_reopen")]
    pub reopen_window_s: i64,
    /// Notice-level tickets (early warnings).
    #[serde(default = "default_sla_notice")]
    pub notice: Sla,
    /// Warning-level tickets.
    #[serde(default = "default_sla_warning")]
    pub warning: Sla,
    /// Critical tickets.
    #[serde(default = "default_sla_critical")]
    pub critical: Sla,
    /// Engineers' tickets (data quality, silent sources, offline edges), whatever their level: an engineer
    /// acknowledges within `ack_s` and resolves within `resolve_s`, or it climbs the same ladder.
    #[serde(default = "default_sla_engineering")]
    pub engineering: Sla,
    /// How often deadlines are checked.
    #[serde(default = "default_check_ms")]
    pub check_interval_ms: u64,
}

fn default_reopen() -> i64 {
    600
}
fn default_sla_notice() -> Sla {
    Sla { ack_s: 900, resolve_s: 3600, subdistrict_s: 7200 }
}
fn default_sla_warning() -> Sla {
    Sla { ack_s: 300, resolve_s: 1800, subdistrict_s: 3600 }
}
fn default_sla_critical() -> Sla {
    Sla { ack_s: 120, resolve_s: 900, subdistrict_s: 1800 }
}
fn default_sla_engineering() -> Sla {
    Sla { ack_s: 1800, resolve_s: 14_400, subdistrict_s: 28_800 }
}
fn default_check_ms() -> u64 {
    1000
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            reopen_window_s: default_reopen(),
            notice: default_sla_notice(),
            warning: default_sla_warning(),
            critical: default_sla_critical(),
            engineering: default_sla_engineering(),
            check_interval_ms: default_check_ms(),
        }
    }
}

impl EscalationConfig {
    /// The SLA for a ticket level.
    pub fn sla(&self, level: crowdgrid_proto::Level) -> Sla {
        match level {
            crowdgrid_proto::Level::Critical => self.critical,
            crowdgrid_proto::Level::Warning => self.warning,
            _ => self.notice,
        }
    }

    /// The SLA of a ticket for `audience` (`engineer` tickets have their own) at `level`.
    pub fn sla_for(&self, audience: &str, level: crowdgrid_proto::Level) -> Sla {
        if audience == "engineer" {
            self.engineering
        } else {
            self.sla(level)
        }
    }
}

/// `[notify]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// HTTP webhooks receiving every ticket change.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name (in logs and the outbox).
    pub name: String,
    /// URL to POST to.
    pub url: String,
    /// Shared secret for the `X-Crowdgrid-Signature: sha256=<hex HMAC of the body>` header.
    pub secret: String,
    /// Give up after this many attempts (the delivery stays visible as failed).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    20
}
