//! Evidence snapshots sent by edges for tickets (JPEG, every person blurred at the edge), kept in the SQLite
//! store beside the readings and removed with them by retention.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::blocking::BlockingConn;
use super::{from_ms, ms, StoreError};

/// Largest snapshot accepted (the embedded broker's default packet limit).
pub const MAX_BYTES: usize = 1024 * 1024;
/// Snapshots kept per ticket (raised, reopened, ...): older ones are removed as a new one arrives.
pub const PER_TICKET: i64 = 4;
/// All snapshots together stay under this many bytes: the oldest go first.
pub const TOTAL_BYTES: i64 = 256 * 1024 * 1024;

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

    /// Stores a snapshot (a ticket may get several: raised, then reopened), keeping at most [`PER_TICKET`] per
    /// ticket and `total_bytes` in all (the oldest are removed first). Returns how many older ones were removed.
    pub async fn save(&self, e: Evidence, total_bytes: i64) -> Result<u64, StoreError> {
        self.conn
            .with(move |c| {
                let tx = c.unchecked_transaction()?;
                tx.execute(
                    "INSERT INTO evidence (ticket_id, site, zone, received, jpeg) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![e.ticket, e.site, e.zone, ms(e.received), e.jpeg],
                )?;
                let mut removed = tx.execute(
                    "DELETE FROM evidence WHERE ticket_id = ?1 AND id NOT IN
                     (SELECT id FROM evidence WHERE ticket_id = ?1 ORDER BY id DESC LIMIT ?2)",
                    params![e.ticket, PER_TICKET],
                )? as u64;
                let mut total: i64 =
                    tx.query_row("SELECT COALESCE(SUM(length(jpeg)), 0) FROM evidence", [], |r| r.get(0))?;
                while total > total_bytes {
                    let freed: Option<i64> = tx
                        .query_row(
                            "DELETE FROM evidence WHERE id = (SELECT MIN(id) FROM evidence) RETURNING length(jpeg)",
                            [],
                            |r| r.get(0),
                        )
                        .optional()?;
                    match freed {
                        Some(n) => {
                            total -= n;
                            removed += 1;
                        }
                        None => break,
                    }
                }
                tx.commit()?;
                Ok(removed)
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
        store.save(ev(0, 1), TOTAL_BYTES).await.unwrap();
        store.save(ev(5, 2), TOTAL_BYTES).await.unwrap();
        assert_eq!(store.latest(7, "s", "z").await.unwrap(), Some(ev(5, 2)));
        assert_eq!(store.latest(8, "s", "z").await.unwrap(), None);
        // Sent for ticket 7 but from another zone: not ticket 7's picture.
        store.save(Evidence { zone: "elsewhere".into(), ..ev(9, 3) }, TOTAL_BYTES).await.unwrap();
        assert_eq!(store.latest(7, "s", "z").await.unwrap(), Some(ev(5, 2)));
    }

    #[tokio::test]
    async fn a_flood_stays_within_the_per_ticket_and_total_budgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(&dir.path().join("c.db")).unwrap();
        let jpeg = |n: usize| {
            let mut v = vec![0xFF, 0xD8, 0xFF];
            v.resize(n, 7);
            v
        };
        let ev = |ticket: i64, n: usize| Evidence {
            ticket,
            site: "s".into(),
            zone: "z".into(),
            received: Utc::now(),
            jpeg: jpeg(n),
        };
        for _ in 0..50 {
            store.save(ev(1, 1000), 1_000_000).await.unwrap();
        }
        let count = |t: i64| {
            let c = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(jpeg)), 0) FROM evidence WHERE ticket_id = ?1 OR ?1 = 0",
                [t],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .unwrap()
        };
        assert_eq!(count(1), (PER_TICKET, PER_TICKET * 1000), "only the newest four of one ticket");
        // Many tickets: the oldest snapshots go once 10 kB is reached.
        for t in 2..40 {
            store.save(ev(t, 1000), 10_000).await.unwrap();
        }
        let (_, bytes) = count(0);
        assert!(bytes <= 10_000, "{bytes}");
        assert!(store.latest(39, "s", "z").await.unwrap().is_some(), "the newest stays");
        assert!(store.latest(1, "s", "z").await.unwrap().is_none(), "the oldest went first");
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
