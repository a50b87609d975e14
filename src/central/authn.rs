//! Who sent a message: a payload's signed frame checked against the edge credentials in force for the topic's
//! site. Pure and synchronous (one HMAC per message); what each kind of message may then carry is checked where
//! it is parsed (a reading's `source_id`, a status's edge, an evidence snapshot's ticket).

use crowdgrid_proto::signed;

use super::validate::Rejection;
use crate::auth::edge_credentials::{Authentication, Registry};

/// A message whose sender is known (or accepted unsigned where authentication is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated<'a> {
    /// The edge that signed it; `None` for an unsigned payload accepted with authentication off.
    pub edge: Option<String>,
    /// The credential it signed with.
    pub kid: Option<u32>,
    /// The body the signature covers (the whole payload when unsigned).
    pub body: &'a [u8],
}

/// Checks frames against the registry.
#[derive(Clone)]
pub struct Authenticator {
    registry: Registry,
    mode: Authentication,
    prefix: String,
}

impl Authenticator {
    /// An authenticator over `registry` for topics under `prefix`.
    pub fn new(registry: Registry, mode: Authentication, prefix: &str) -> Self {
        Self { registry, mode, prefix: prefix.to_string() }
    }

    /// The sender of `payload` published on `topic`, or why it is refused: `unauthenticated` (unsigned where
    /// signing is required), `bad_frame`, `unknown_credential` (never issued, revoked, or of another site),
    /// `bad_signature`.
    pub fn check<'a>(&self, topic: &str, payload: &'a [u8]) -> Result<Authenticated<'a>, Rejection> {
        let frame = match signed::open(payload) {
            Ok(Some(f)) => f,
            Ok(None) if self.mode == Authentication::Off => {
                return Ok(Authenticated { edge: None, kid: None, body: payload })
            }
            Ok(None) => return Err(Rejection::new("unauthenticated", format!("unsigned payload on {topic}"))),
            Err(e) => return Err(Rejection::new("bad_frame", format!("{topic}: {e}"))),
        };
        let site = site_of(&self.prefix, topic)
            .ok_or_else(|| Rejection::new("topic_mismatch", format!("{topic} is not under {}", self.prefix)))?;
        let h = &frame.header;
        let cred = self.registry.key(site, &h.edge, h.kid).ok_or_else(|| {
            Rejection::new(
                "unknown_credential",
                format!("{topic}: no credential {} for edge {:?} of site {site:?}", h.kid, h.edge),
            )
        })?;
        if !frame.verify(cred.key(), topic) {
            return Err(Rejection::new("bad_signature", format!("{topic}: signature of {:?} does not match", h.edge)));
        }
        Ok(Authenticated { kid: Some(frame.header.kid), edge: Some(frame.header.edge), body: frame.body })
    }
}

/// The site level of a topic under `prefix`.
fn site_of<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    topic.strip_prefix(prefix)?.strip_prefix('/')?.split('/').next().filter(|s| !s.is_empty())
}

pub use crowdgrid_proto::reading::edge_of_source;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::edge_credentials::EdgeCredentials;

    async fn setup(
        mode: Authentication,
    ) -> (Authenticator, signed::Credential, EdgeCredentials, Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeCredentials::open(&dir.path().join("c.db"), &dir.path().join("k")).unwrap();
        let cred = store.create("west-taihu", "edge-1").await.unwrap();
        let reg = Registry::default();
        reg.reload(&store).await.unwrap();
        (Authenticator::new(reg.clone(), mode, "crowdgrid/v1"), cred, store, reg, dir)
    }

    #[tokio::test]
    async fn only_a_signature_of_a_credential_in_force_for_that_site_passes() {
        let (a, cred, store, reg, _dir) = setup(Authentication::Required).await;
        let t = "crowdgrid/v1/west-taihu/beach/reading";
        let ok = signed::seal(&cred, "edge-1", t, b"{}");
        assert_eq!(a.check(t, &ok).unwrap(), Authenticated { edge: Some("edge-1".into()), kid: Some(1), body: b"{}" });
        assert_eq!(a.check(t, b"{}").unwrap_err().reason, "unauthenticated");
        // The same frame on another site's topic: that site has no such credential.
        let other = "crowdgrid/v1/boai-school/gate-plaza/reading";
        assert_eq!(
            a.check(other, &signed::seal(&cred, "edge-1", other, b"{}")).unwrap_err().reason,
            "unknown_credential"
        );
        // Moved to another topic of the same site: the MAC covers the topic.
        assert_eq!(a.check("crowdgrid/v1/west-taihu/jetty/reading", &ok).unwrap_err().reason, "bad_signature");
        // Claiming to be another edge with edge-1's key.
        let forged = signed::seal(&cred, "edge-2", t, b"{}");
        assert_eq!(a.check(t, &forged).unwrap_err().reason, "unknown_credential");
        assert_eq!(a.check(t, b"CGS1 garbage").unwrap_err().reason, "bad_frame");
        // Revoked: refused after the next reload, without a restart.
        store.revoke("west-taihu", "edge-1", None).await.unwrap();
        reg.reload(&store).await.unwrap();
        assert_eq!(a.check(t, &ok).unwrap_err().reason, "unknown_credential");
    }

    #[tokio::test]
    async fn with_authentication_off_unsigned_passes_but_signed_is_still_checked() {
        let (a, cred, _store, _reg, _dir) = setup(Authentication::Off).await;
        let t = "crowdgrid/v1/west-taihu/beach/reading";
        assert_eq!(a.check(t, b"{}").unwrap().edge, None);
        let moved = signed::seal(&cred, "edge-1", "crowdgrid/v1/west-taihu/jetty/reading", b"{}");
        assert_eq!(a.check(t, &moved).unwrap_err().reason, "bad_signature");
        assert_eq!(edge_of_source("edge-1/cells"), Some("edge-1"));
        assert_eq!(edge_of_source("manual"), None);
    }
}
