//! Evidence snapshots sent by edges for tickets (JPEG, every person blurred at the edge), kept in the SQLite
//! store beside the readings and removed with them by retention.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::blocking::BlockingConn;
use super::{from_ms, ms, StoreError};

/// Largest snapshot accepted (the embedded broker's default packet limit).
pub const MAX_BYTES: usize = 1024 * 1024;

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Ticket id.
    pub ticket: i64,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// When the centre received it.
    pub received: DateTime<Utc>,
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
}

/// Why a snapshot is refused.
pub fn check(jpeg: &[u8]) -> Result<(), &'static str> {
    if jpeg.len() > MAX_BYTES {
        return Err("evidence_oversized");
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err("evidence_not_jpeg");
    }
    Ok(())
}

/// Handle on the evidence table.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    conn: BlockingConn,
}

impl EvidenceStore {
    /// Opens its own connection to the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: BlockingConn::open(path)? })
    }

    /// Stores a snapshot (a ticket may get several: raised, then reopened).
    pub async fn save(&self, e: Evidence) -> Result<(), StoreError> {
        self.conn
            .with(move |c| {
                c.execute(
                    "INSERT INTO evidence (ticket_id, site, zone, received, jpeg) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![e.ticket, e.site, e.zone, ms(e.received), e.jpeg],
                )?;
                Ok(())
            })
            .await
    }

    /// The newest snapshot sent for `ticket` from its own site and zone (a snapshot naming another place is
    /// never shown for it).
    pub async fn latest(&self, ticket: i64, site: &str, zone: &str) -> Result<Option<Evidence>, StoreError> {
        let (site, zone) = (site.to_string(), zone.to_string());
        self.conn
            .with(move |c| {
                Ok(c.query_row(
                    "SELECT ticket_id, site, zone, received, jpeg FROM evidence
                     WHERE ticket_id = ?1 AND site = ?2 AND zone = ?3 ORDER BY received DESC, id DESC LIMIT 1",
                    params![ticket, site, zone],
                    |r| {
                        Ok(Evidence {
                            ticket: r.get(0)?,
                            site: r.get(1)?,
                            zone: r.get(2)?,
                            received: from_ms(r.get(3)?),
                            jpeg: r.get(4)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_and_returns_the_newest_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(&dir.path().join("c.db")).unwrap();
        assert_eq!(store.latest(7, "s", "z").await.unwrap(), None);
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let ev = |s, b: u8| Evidence {
            ticket: 7,
            site: "s".into(),
            zone: "z".into(),
            received: at(s),
            jpeg: vec![0xFF, 0xD8, 0xFF, b],
        };
        store.save(ev(0, 1)).await.unwrap();
        store.save(ev(5, 2)).await.unwrap();
        assert_eq!(store.latest(7, "s", "z").await.unwrap(), Some(ev(5, 2)));
        assert_eq!(store.latest(8, "s", "z").await.unwrap(), None);
        // Sent for ticket 7 but from another zone: not ticket 7's picture.
        store.save(Evidence { zone: "elsewhere".into(), ..ev(9, 3) }).await.unwrap();
        assert_eq!(store.latest(7, "s", "z").await.unwrap(), Some(ev(5, 2)));
    }

    #[test]
    fn only_jpegs_under_the_limit_pass() {
        assert_eq!(check(&[0xFF, 0xD8, 0xFF, 0xE0]), Ok(()));
        assert_eq!(check(b"GIF89a"), Err("evidence_not_jpeg"));
        let mut big = vec![0xFF, 0xD8, 0xFF];
        big.resize(MAX_BYTES + 1, 0);
        assert_eq!(check(&big), Err("evidence_oversized"));
    }
}
