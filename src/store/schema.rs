//! Opening the SQLite file with the pragmas and tables every connection needs.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS readings (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    ts INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    count REAL NOT NULL,
    area_m2 REAL NOT NULL,
    density REAL NOT NULL,
    confidence REAL NOT NULL,
    person REAL,
    vehicle REAL,
    inflow REAL,
    outflow REAL,
    conflict REAL,
    raw_count REAL,
    dwell_p50_s REAL,
    dwell_p90_s REAL,
    vehicle_inflow REAL,
    vehicle_outflow REAL,
    PRIMARY KEY (site, zone, ts, source_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_versions (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    toml TEXT NOT NULL,
    author TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    diff TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_versions_site ON rule_versions (site, version);
CREATE TABLE IF NOT EXISTS camera_settings (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    edge TEXT NOT NULL,
    camera TEXT NOT NULL,
    person_threshold REAL,
    vehicle_threshold REAL,
    nms_iou REAL,
    model TEXT,
    model_sha256 TEXT,
    author TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    geometry TEXT
);
CREATE INDEX IF NOT EXISTS camera_settings_camera ON camera_settings (site, edge, camera, version);
CREATE TABLE IF NOT EXISTS map_series (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    ts INTEGER NOT NULL,
    count REAL NOT NULL,
    density REAL NOT NULL,
    area_m2 REAL NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (site, zone, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_marks (
    source_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    high INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_early (
    source_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (source_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    subdistrict TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    audience TEXT NOT NULL,
    level TEXT NOT NULL,
    state TEXT NOT NULL,
    tier TEXT NOT NULL,
    assignee TEXT,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    on_site_at INTEGER,
    closed_at INTEGER,
    relief_at INTEGER,
    ack_due INTEGER,
    resolve_due INTEGER,
    density REAL NOT NULL,
    peak_density REAL NOT NULL,
    resolution TEXT,
    resolved_by TEXT,
    reopened INTEGER NOT NULL DEFAULT 0,
    metric TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL DEFAULT 0,
    peak_value REAL NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets (site, zone, rule) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS tickets_state ON tickets (state, opened_at);
CREATE TABLE IF NOT EXISTS ticket_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_events_ticket ON ticket_events (ticket_id, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, next_at);
CREATE TABLE IF NOT EXISTS rule_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    received INTEGER NOT NULL,
    jpeg BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_ticket ON evidence (ticket_id, received);
CREATE TABLE IF NOT EXISTS edge_credentials (
    site TEXT NOT NULL,
    edge TEXT NOT NULL,
    kid INTEGER NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (site, edge, kid)
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    worker TEXT,
    created_at INTEGER NOT NULL
);
";

/// Schema version written to `PRAGMA user_version`; a file from an unknown version is refused, an older
/// one is migrated.
pub const VERSION: i64 = 7;

/// What takes a file from version N to N + 1 (new tables come from `SCHEMA` itself).
const MIGRATIONS: &[(i64, &str)] = &[
    (2, "ALTER TABLE readings ADD COLUMN conflict REAL;"),
    // v3 kept only the newest (epoch, seq) per source; v4 keeps the contiguous mark (`seq`) and the highest.
    (
        3,
        "CREATE TABLE IF NOT EXISTS source_marks (source_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL,
           seq INTEGER NOT NULL) WITHOUT ROWID;
         ALTER TABLE source_marks ADD COLUMN high INTEGER NOT NULL DEFAULT 0;
         UPDATE source_marks SET high = seq;",
    ),
    // v4 kept the rule's value in `density` whatever it measured; v5 keeps it in `value` with `metric` and
    // `unit`, and `density` is the zone's density. What v4 stored moves to `value` (its metric was not kept).
    (
        4,
        "ALTER TABLE tickets ADD COLUMN metric TEXT NOT NULL DEFAULT '';
         ALTER TABLE tickets ADD COLUMN unit TEXT NOT NULL DEFAULT '';
         ALTER TABLE tickets ADD COLUMN value REAL NOT NULL DEFAULT 0;
         ALTER TABLE tickets ADD COLUMN peak_value REAL NOT NULL DEFAULT 0;
         UPDATE tickets SET value = density, peak_value = peak_density;",
    ),
    // v6: what tracking cameras add to a reading (the raw count, dwell, vehicles through a line).
    (
        5,
        "ALTER TABLE readings ADD COLUMN raw_count REAL;
         ALTER TABLE readings ADD COLUMN dwell_p50_s REAL;
         ALTER TABLE readings ADD COLUMN dwell_p90_s REAL;
         ALTER TABLE readings ADD COLUMN vehicle_inflow REAL;
         ALTER TABLE readings ADD COLUMN vehicle_outflow REAL;",
    ),
    // v7: a camera settings version may carry the geometry an engineer drew (JSON). A file older than the
    // settings table gets it as v6 had it first, so the step is the same for every file.
    (
        6,
        "CREATE TABLE IF NOT EXISTS camera_settings (version INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL,
           edge TEXT NOT NULL, camera TEXT NOT NULL, person_threshold REAL, vehicle_threshold REAL, nms_iou REAL,
           model TEXT, model_sha256 TEXT, author TEXT NOT NULL, note TEXT NOT NULL, created_at INTEGER NOT NULL);
         ALTER TABLE camera_settings ADD COLUMN geometry TEXT;",
    ),
];

/// Opens (creating if needed) the database at `path` with WAL and the schema.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Dir { path: dir.display().to_string(), source })?;
        }
    }
    // SQLite treats an empty file as a new database: a store truncated by a full disk or a bad copy would start
    // empty without a word, and the centre would forget every reading and ticket.
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(StoreError::Empty(path.display().to_string()));
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_tables: i64 =
        conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'readings'", [], |r| {
            r.get(0)
        })?;
    if has_tables > 0 && version != VERSION {
        // One transaction for the steps and the new version number: a crash (or a second process opening
        // the file) either sees the old schema or the new one, never a half-migrated file.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let migrated = (|| {
            let mut at: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let from = at;
            while let Some((_, sql)) = MIGRATIONS.iter().find(|(f, _)| *f == at) {
                conn.execute_batch(sql)?;
                at += 1;
            }
            if at != VERSION {
                return Err(StoreError::Schema { path: path.display().to_string(), found: from, expected: VERSION });
            }
            conn.pragma_update(None, "user_version", VERSION)?;
            Ok(from)
        })();
        match migrated {
            Ok(from) => {
                conn.execute_batch("COMMIT")?;
                if from != VERSION {
                    tracing::info!(path = %path.display(), from, to = VERSION, "store schema migrated");
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_corrupt_store_file_is_refused_not_started_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let e = open(&empty).unwrap_err().to_string();
        assert!(e.contains("is empty (0 bytes)"), "{e}");
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "left as it was");
        let corrupt = dir.path().join("corrupt.db");
        std::fs::write(&corrupt, vec![0x42u8; 8192]).unwrap();
        let e = open(&corrupt).unwrap_err().to_string();
        assert!(e.contains("not a database"), "{e}");
        assert!(open(&dir.path().join("new.db")).is_ok(), "a missing file is a new store");
    }

    #[test]
    fn a_version_2_file_is_migrated_once_and_an_unknown_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The readings table as version 2 wrote it (no conflict column), with one row.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE readings (site TEXT NOT NULL, zone TEXT NOT NULL, ts INTEGER NOT NULL,
                 source_id TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT NOT NULL, count REAL NOT NULL,
                 area_m2 REAL NOT NULL, density REAL NOT NULL, confidence REAL NOT NULL, person REAL,
                 vehicle REAL, inflow REAL, outflow REAL, PRIMARY KEY (site, zone, ts, source_id, seq)) WITHOUT ROWID;
                 INSERT INTO readings VALUES ('s', 'z', 1, 'e/cam', 1, 'camera', 3, 100, 0.03, 0.8, 3, 1, NULL, NULL);
                 CREATE TABLE tickets (id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, zone TEXT NOT NULL,
                 grid TEXT NOT NULL, community TEXT NOT NULL, subdistrict TEXT NOT NULL, rule TEXT NOT NULL,
                 kind TEXT NOT NULL, audience TEXT NOT NULL, level TEXT NOT NULL, state TEXT NOT NULL,
                 tier TEXT NOT NULL, assignee TEXT, opened_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                 acknowledged_at INTEGER, on_site_at INTEGER, closed_at INTEGER, relief_at INTEGER, ack_due INTEGER,
                 resolve_due INTEGER, density REAL NOT NULL, peak_density REAL NOT NULL, resolution TEXT,
                 resolved_by TEXT, reopened INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO tickets (site, zone, grid, community, subdistrict, rule, kind, audience, level, state,
                 tier, opened_at, updated_at, density, peak_density)
                 VALUES ('s', 'gate', 'g', 'c', 'sd', 'gate-inflow', 'crowd', 'grid_worker', 'warning', 'raised',
                 'grid', 1, 1, 640, 700);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        for _ in 0..2 {
            let c = open(&path).unwrap();
            let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(v, VERSION);
            let (count, conflict): (f64, Option<f64>) =
                c.query_row("SELECT count, conflict FROM readings", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            assert_eq!((count, conflict), (3.0, None), "the old row kept, its conflict unknown");
            let ticket: (String, f64, f64) = c
                .query_row("SELECT metric, value, peak_value FROM tickets", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            assert_eq!(ticket, (String::new(), 640.0, 700.0), "v4's `density` was the rule's value: moved once");
            let drawn: i64 = c.query_row("SELECT COUNT(geometry) FROM camera_settings", [], |r| r.get(0)).unwrap();
            assert_eq!(drawn, 0, "v7's camera settings carry a geometry column");
        }
        let newer = dir.path().join("newer.db");
        {
            let c = open(&newer).unwrap();
            c.pragma_update(None, "user_version", VERSION + 1).unwrap();
        }
        assert!(matches!(open(&newer), Err(StoreError::Schema { found, .. }) if found == VERSION + 1));
    }
}
