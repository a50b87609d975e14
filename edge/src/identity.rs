//! Who this edge is on the wire: its credential (from `crowdgrid edge-credential create`) signs every reading,
//! status and evidence snapshot it publishes, logs it in to the broker as `{site}/{edge}`, and checks that a
//! commit acknowledgement really comes from the centre before a reading is deleted from the queue.
//!
//! Without a credential the edge speaks unsigned v1 (accepted only by a centre with `[edges] authentication =
//! "off"`) and logs in with `[mqtt] username`/`password` if those are set.

use crowdgrid_proto::ack::CommitAck;
use crowdgrid_proto::signed::{self, Credential};
use rumqttc::MqttOptions;

use crate::config::MqttConfig;

/// The edge's identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// Its credential, if it has one.
    pub credential: Option<Credential>,
}

impl Identity {
    /// The identity `mqtt` describes for `edge` of `site`.
    pub fn new(site: &str, edge: &str, mqtt: &MqttConfig) -> Identity {
        Identity { site: site.to_string(), edge: edge.to_string(), credential: mqtt.credential.clone() }
    }

    /// The payload to publish on `topic`: `body` signed when there is a credential, else `body` itself.
    pub fn seal(&self, topic: &str, body: Vec<u8>) -> Vec<u8> {
        match &self.credential {
            Some(c) => signed::seal(c, &self.edge, topic, &body),
            None => body,
        }
    }

    /// Sets how to reach the broker: TLS when `[mqtt] tls_ca` is set, and the login — `{site}/{edge}` with the
    /// credential, else the configured username/password.
    pub fn login(&self, opts: &mut MqttOptions, mqtt: &MqttConfig) {
        if let Some(tls) = &mqtt.tls {
            crate::tls::use_tls(opts, tls.clone());
        }
        match &self.credential {
            Some(c) => {
                opts.set_credentials(format!("{}/{}", self.site, self.edge), c.secret.clone());
            }
            None => {
                if let Some(user) = &mqtt.username {
                    opts.set_credentials(user.clone(), mqtt.password.clone().unwrap_or_default());
                }
            }
        }
    }

    /// A commit acknowledgement received on `topic`, if it is one the centre sent to us: signed by the centre
    /// with our own credential when we have one (anyone else could make us delete readings that were never
    /// stored), plain JSON otherwise.
    pub fn open_ack(&self, topic: &str, payload: &[u8]) -> Result<CommitAck, &'static str> {
        let body = self.from_centre(topic, payload).map_err(|why| match why {
            FromCentre::BadSignature => "ack_bad_signature",
            FromCentre::Unsigned => "ack_unsigned",
            FromCentre::Unverifiable => "ack_unverifiable",
        })?;
        serde_json::from_slice(body).map_err(|_| "ack_malformed")
    }

    /// The body of a message the centre sent us on `topic`: signed by the centre with our own credential when we
    /// have one, plain otherwise (a centre with edge authentication off).
    pub fn from_centre<'a>(&self, topic: &str, payload: &'a [u8]) -> Result<&'a [u8], FromCentre> {
        match (&self.credential, signed::open(payload)) {
            (Some(c), Ok(Some(frame))) => {
                if frame.header.edge != signed::CENTRE || frame.header.kid != c.kid || !frame.verify(c.key(), topic) {
                    return Err(FromCentre::BadSignature);
                }
                Ok(frame.body)
            }
            (Some(_), _) => Err(FromCentre::Unsigned),
            (None, Ok(None)) => Ok(payload),
            (None, _) => Err(FromCentre::Unverifiable),
        }
    }

    /// Headers that sign an HTTP `GET` of `path` to the centre now (none without a credential).
    pub fn sign_get(&self, path: &str) -> Vec<(&'static str, String)> {
        let Some(c) = &self.credential else { return Vec::new() };
        let now = chrono::Utc::now().timestamp();
        vec![
            (signed::HTTP_SIGNATURE, signed::sign_request(c, &self.edge, &format!("GET {path}"), now)),
            (signed::HTTP_TIME, now.to_string()),
        ]
    }
}

/// Why a message said to be the centre's was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromCentre {
    /// Signed, but not by the centre with our key.
    BadSignature,
    /// Not signed, and we have a credential.
    Unsigned,
    /// Signed, and we have no key to check it with.
    Unverifiable,
}

impl FromCentre {
    /// A counter reason, e.g. `settings_unsigned`.
    pub fn reason(self, what: &str) -> String {
        let why = match self {
            FromCentre::BadSignature => "bad_signature",
            FromCentre::Unsigned => "unsigned",
            FromCentre::Unverifiable => "unverifiable",
        };
        format!("{what}_{why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_taken_only_from_the_centre_with_our_key() {
        let cred = Credential::parse(&format!("2.{}", "1f".repeat(32))).unwrap();
        let id = Identity { site: "s".into(), edge: "e".into(), credential: Some(cred.clone()) };
        let topic = "crowdgrid/v1/s/edge/e/ack";
        let body = br#"{"committed":[{"source_id":"e/a","epoch":1,"ranges":[[1,3]]}]}"#;
        let good = signed::seal(&cred, signed::CENTRE, topic, body);
        assert_eq!(id.open_ack(topic, &good).unwrap().triples().count(), 3);
        assert_eq!(id.open_ack(topic, body).unwrap_err(), "ack_unsigned");
        let by_edge = signed::seal(&cred, "e", topic, body);
        assert_eq!(id.open_ack(topic, &by_edge).unwrap_err(), "ack_bad_signature");
        let other = Credential::parse(&format!("2.{}", "2f".repeat(32))).unwrap();
        assert_eq!(
            id.open_ack(topic, &signed::seal(&other, signed::CENTRE, topic, body)).unwrap_err(),
            "ack_bad_signature"
        );
        let plain = Identity { credential: None, ..id.clone() };
        assert_eq!(plain.open_ack(topic, body).unwrap().committed.len(), 1);
        assert_eq!(plain.open_ack(topic, &good).unwrap_err(), "ack_unverifiable");
        assert_eq!(id.seal(topic, b"x".to_vec()), signed::seal(&cred, "e", topic, b"x"));
        assert_eq!(plain.seal(topic, b"x".to_vec()), b"x");
    }
}
