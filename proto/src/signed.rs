//! Signed frames: how an edge proves that a reading, a status or an evidence snapshot is its own, and how the
//! centre proves that a commit acknowledgement is its own.
//!
//! Why at the message and not only at the broker: a broker can be misconfigured (an `allow_anonymous`, an ACL
//! line too wide, a bridge), and the centre decides where grid workers are sent. Each frame carries an
//! HMAC-SHA256 over the topic and the exact body bytes, keyed by the edge's credential, so a forged or replayed-
//! onto-another-topic message is refused at the centre whatever the broker let through. The body is left byte for
//! byte as it was (a reading's JSON, a JPEG), so nothing needs canonicalising and `mosquitto_pub` plus `openssl`
//! can produce a frame by hand:
//!
//! ```text
//! CGS1 {"edge":"west-taihu-edge-1","kid":1,"mac":"<64 hex>"}\n<body bytes>
//! mac = HMAC-SHA256(key, "CGS1\n" + topic + "\n" + body)
//! ```
//!
//! `kid` numbers the edge's credential (a new one can be issued before the old one is revoked). The key is the
//! credential's secret (`{kid}.{64 hex}`, as `crowdgrid edge-credential create` prints it) taken as bytes.
//! Replays of the same frame on the same topic are harmless for readings (the centre stores each `(source, epoch,
//! seq)` once).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The signer name of the centre's own frames (commit acknowledgements), and its broker username.
pub const CENTRE: &str = "crowdgrid-central";

/// First bytes of every signed frame (a reading's JSON starts with `{`, a JPEG with `FF D8`).
pub const MAGIC: &[u8] = b"CGS1 ";
/// Largest header line accepted (edge id ≤ 64 bytes, a kid, 64 hex digits, JSON punctuation).
const MAX_HEADER: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// An edge credential as issued by the centre: `{kid}.{64 hex digits}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Which of the edge's credentials this is.
    pub kid: u32,
    /// The secret, as printed (used as the HMAC key and as the broker password).
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in a debug dump of a config.
        f.debug_struct("Credential").field("kid", &self.kid).field("secret", &"<redacted>").finish()
    }
}

/// Why a credential string or a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("a credential is `<kid>.<64 hex digits>`")]
    BadCredential,
    #[error("signed frame without a header line")]
    NoHeader,
    #[error("signed frame header is not valid: {0}")]
    BadHeader(String),
}

impl Credential {
    /// Parses `{kid}.{64 hex}` (surrounding white space, e.g. a file's final newline, is ignored).
    pub fn parse(text: &str) -> Result<Credential, SignedError> {
        let text = text.trim();
        let (kid, hex) = text.split_once('.').ok_or(SignedError::BadCredential)?;
        let kid: u32 = kid.parse().map_err(|_| SignedError::BadCredential)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignedError::BadCredential);
        }
        Ok(Credential { kid, secret: text.to_string() })
    }

    /// The bytes the MAC is keyed with.
    pub fn key(&self) -> &[u8] {
        self.secret.as_bytes()
    }
}

/// The header line of a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Who signed: the edge id (or `crowdgrid-central` for the centre's acknowledgements).
    pub edge: String,
    /// Which credential of that edge.
    pub kid: u32,
    /// HMAC-SHA256, hex.
    pub mac: String,
}

/// A frame split into its header and its body (not verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The parsed header.
    pub header: Header,
    /// The exact body bytes.
    pub body: &'a [u8],
}

fn mac_over(key: &[u8], topic: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(b"CGS1\n");
    mac.update(topic.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_hmac() -> ! {
    // hmac documents that HMAC accepts any key length; this is the one branch that cannot happen.
    panic!("HMAC-SHA256 refused a key")
}

/// Signs `body` for `topic`: the full payload to publish.
pub fn seal(cred: &Credential, signer: &str, topic: &str, body: &[u8]) -> Vec<u8> {
    let mac = hex::encode(mac_over(cred.key(), topic, body).finalize().into_bytes());
    let header = Header { edge: signer.to_string(), kid: cred.kid, mac };
    // A struct of strings and an integer always serialises.
    let line = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + 1 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Splits a payload into header and body. `Ok(None)`: not a signed frame (no magic), the payload is all body.
pub fn open(payload: &[u8]) -> Result<Option<Frame<'_>>, SignedError> {
    let Some(rest) = payload.strip_prefix(MAGIC) else {
        return Ok(None);
    };
    let end = rest.iter().take(MAX_HEADER).position(|b| *b == b'\n').ok_or(SignedError::NoHeader)?;
    let header: Header = serde_json::from_slice(&rest[..end]).map_err(|e| SignedError::BadHeader(e.to_string()))?;
    if header.mac.len() != 64 {
        return Err(SignedError::BadHeader("mac is not 64 hex digits".into()));
    }
    Ok(Some(Frame { header, body: &rest[end + 1..] }))
}

/// HTTP header carrying a signed request's header line (an edge fetching a model from the centre).
pub const HTTP_SIGNATURE: &str = "x-crowdgrid-signature";
/// HTTP header carrying the signed request's time (Unix seconds): the signed body.
pub const HTTP_TIME: &str = "x-crowdgrid-time";

/// Signs an HTTP request `target` (`"GET /api/v1/…"`) at `unix` seconds: the value of [`HTTP_SIGNATURE`] (the
/// frame's header line); [`HTTP_TIME`] carries `unix`. The MAC covers the method, the path and the time, so a
/// signature serves that one request for as long as the receiver accepts the time.
pub fn sign_request(cred: &Credential, signer: &str, target: &str, unix: i64) -> String {
    let frame = seal(cred, signer, target, unix.to_string().as_bytes());
    let line = &frame[MAGIC.len()..];
    let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end]).into_owned()
}

/// The header of a signed request whose MAC is right for `target` and `time` under a key `key_of` finds for
/// the signer and kid; `None` otherwise (the time's freshness is the caller's to check).
pub fn verify_request(
    header_line: &str,
    time: &str,
    target: &str,
    key_of: impl FnOnce(&Header) -> Option<Vec<u8>>,
) -> Option<Header> {
    let mut payload = Vec::with_capacity(MAGIC.len() + header_line.len() + 1 + time.len());
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(header_line.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(time.as_bytes());
    let frame = open(&payload).ok()??;
    let key = key_of(&frame.header)?;
    frame.verify(&key, target).then(|| frame.header.clone())
}

impl Frame<'_> {
    /// True if the MAC is right for `topic` under `key` (compared in constant time).
    pub fn verify(&self, key: &[u8], topic: &str) -> bool {
        match hex::decode(&self.header.mac) {
            Ok(tag) => mac_over(key, topic, self.body).verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred() -> Credential {
        Credential::parse(&format!("3.{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_only_for_its_target_time_and_key() {
        let c = cred();
        let h = sign_request(&c, "edge-1", "GET /api/v1/edges/s/edge-1/models/ab", 1_700_000_000);
        let key = |hd: &Header| (hd.edge == "edge-1" && hd.kid == 3).then(|| c.key().to_vec());
        let ok = verify_request(&h, "1700000000", "GET /api/v1/edges/s/edge-1/models/ab", key).unwrap();
        assert_eq!((ok.edge.as_str(), ok.kid), ("edge-1", 3));
        assert!(verify_request(&h, "1700000001", "GET /api/v1/edges/s/edge-1/models/ab", key).is_none(), "time");
        assert!(verify_request(&h, "1700000000", "GET /api/v1/edges/s/edge-1/models/cd", key).is_none(), "path");
        assert!(verify_request(&h, "1700000000", "GET /api/v1/edges/s/edge-1/models/ab", |_| None).is_none());
        assert!(verify_request("{not json", "1", "GET /", key).is_none());
    }

    #[test]
    fn a_sealed_frame_opens_and_verifies_only_for_its_topic_and_key() {
        let c = cred();
        let body = br#"{"site":"s","zone":"z"}"#;
        let p = seal(&c, "edge-1", "crowdgrid/v1/s/z/reading", body);
        let f = open(&p).unwrap().unwrap();
        assert_eq!(f.header.edge, "edge-1");
        assert_eq!(f.header.kid, 3);
        assert_eq!(f.body, body);
        assert!(f.verify(c.key(), "crowdgrid/v1/s/z/reading"));
        assert!(!f.verify(c.key(), "crowdgrid/v1/s/other/reading"), "bound to the topic");
        let other = Credential::parse(&format!("3.{}", "cd".repeat(32))).unwrap();
        assert!(!f.verify(other.key(), "crowdgrid/v1/s/z/reading"), "bound to the key");
        let mut tampered = p.clone();
        let last = tampered.len() - 2;
        tampered[last] = b'Z';
        assert!(!open(&tampered).unwrap().unwrap().verify(c.key(), "crowdgrid/v1/s/z/reading"));
    }

    #[test]
    fn the_mac_covers_magic_topic_and_body_in_that_order() {
        // The documented shell recipe (tests/by_hand.rs runs it with openssl) relies on this exact input.
        let c = Credential::parse(&format!("1.{}", "0".repeat(64))).unwrap();
        let p = seal(&c, "e", "t", b"{}");
        let f = open(&p).unwrap().unwrap();
        assert_eq!(f.header.mac.len(), 64);
        let direct = {
            let mut m = HmacSha256::new_from_slice(c.key()).unwrap();
            m.update(b"CGS1\nt\n{}");
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(f.header.mac, direct);
    }

    #[test]
    fn plain_payloads_and_broken_headers() {
        assert_eq!(open(b"{\"a\":1}").unwrap(), None);
        assert_eq!(open(&[0xff, 0xd8, 0xff]).unwrap(), None);
        assert_eq!(open(b"CGS1 {\"edge\":\"e\"").unwrap_err(), SignedError::NoHeader);
        assert!(matches!(open(b"CGS1 {\"edge\":1}\nbody").unwrap_err(), SignedError::BadHeader(_)));
        assert!(matches!(
            open(b"CGS1 {\"edge\":\"e\",\"kid\":1,\"mac\":\"ab\"}\n").unwrap_err(),
            SignedError::BadHeader(_)
        ));
        for bad in ["", "1", "x.ab", &format!("1.{}", "g".repeat(64)), &format!("1.{}", "a".repeat(63))] {
            assert_eq!(Credential::parse(bad).unwrap_err(), SignedError::BadCredential, "{bad:?}");
        }
        assert!(format!("{:?}", cred()).contains("redacted"));
    }
}
