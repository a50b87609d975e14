//! File-drop input: scan a directory for dropped JSON/CSV files, process them in name order and move
//! each into `done/` (or `failed/` when nothing in it parses).
//!
//! Files whose names start with `.` or end in `.tmp`/`.part` are left alone, so writers can create a
//! file under a temporary name and rename it into place when complete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{records, sleep_or_cancel, Batch, InputContext, Record};

/// Starts scanning `dir` every `interval_ms` milliseconds.
pub fn spawn<T: Record>(
    dir: PathBuf,
    interval_ms: u64,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> JoinHandle<()> {
    tokio::spawn(run(dir, interval_ms, cx, tx))
}

async fn run<T: Record>(dir: PathBuf, interval_ms: u64, cx: InputContext, tx: mpsc::Sender<Batch<T>>) {
    tracing::info!(source = %cx.source_id, dir = %dir.display(), "file-drop input watching");
    let interval = Duration::from_millis(interval_ms.max(10));
    loop {
        match scan_once(&dir, &cx, &tx).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => cx.error(&format!("scan {}: {e}", dir.display())),
        }
        if !sleep_or_cancel(interval, &cx.shutdown).await {
            break;
        }
    }
    tracing::debug!(source = %cx.source_id, "file-drop input stopped");
}

fn skipped(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part")
}

/// Processes every complete file in `dir` once. Returns `Ok(false)` when the source has gone away
/// or shutdown was requested.
pub async fn scan_once<T: Record>(dir: &Path, cx: &InputContext, tx: &mpsc::Sender<Batch<T>>) -> std::io::Result<bool> {
    tokio::fs::create_dir_all(dir).await?;
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !skipped(&name) && entry.file_type().await?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    for (name, path) in files {
        if cx.shutdown.is_cancelled() {
            return Ok(false);
        }
        let body = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                cx.error(&format!("read {}: {e}", path.display()));
                continue;
            }
        };
        let (recs, errors) = records::parse::<T>(records::detect_path(&path, &body), &body);
        let failed = recs.is_empty() && !errors.is_empty();
        let target = if failed {
            let first = errors.first().map(String::as_str).unwrap_or_default();
            cx.error(&format!("{name}: nothing parsed ({} errors; first: {first})", errors.len()));
            "failed"
        } else {
            tracing::debug!(source = %cx.source_id, file = %name, records = recs.len(), errors = errors.len(), "file processed");
            if tx.send(Batch::new(recs, errors)).await.is_err() {
                return Ok(false);
            }
            "done"
        };
        if let Err(e) = move_into(dir, target, &name, &path).await {
            cx.error(&format!("move {name} to {target}/: {e}"));
        }
    }
    Ok(true)
}

async fn move_into(dir: &Path, sub: &str, name: &str, path: &Path) -> std::io::Result<()> {
    let target = dir.join(sub);
    tokio::fs::create_dir_all(&target).await?;
    tokio::fs::rename(path, target.join(name)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use chrono::{DateTime, Utc};
    use serde::Deserialize;

    #[derive(Debug, Clone, Deserialize)]
    struct Rec {
        ts: DateTime<Utc>,
    }
    impl super::super::Timestamped for Rec {
        fn ts(&self) -> DateTime<Utc> {
            self.ts
        }
        fn set_ts(&mut self, ts: DateTime<Utc>) {
            self.ts = ts;
        }
    }

    #[tokio::test]
    async fn files_move_to_done_or_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("drop");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.csv"), "ts\n2026-01-01T00:00:00Z\nnope\n").unwrap();
        std::fs::write(dir.join("b.json"), "{\"bad\":1}").unwrap();
        std::fs::write(dir.join(".c.tmp"), "ts\n").unwrap();
        let health = Health::new();
        let cx = InputContext {
            site: "s".into(),
            source_id: "e/s".into(),
            kind: "gate",
            health: health.clone(),
            mqtt: Default::default(),
            shutdown: Default::default(),
        };
        let (tx, mut rx) = mpsc::channel::<Batch<Rec>>(4);
        assert!(scan_once(&dir, &cx, &tx).await.unwrap());
        let b = rx.try_recv().unwrap();
        assert_eq!((b.records.len(), b.errors.len()), (1, 1));
        assert!(rx.try_recv().is_err());
        assert!(dir.join("done/a.csv").exists());
        assert!(dir.join("failed/b.json").exists());
        assert!(dir.join(".c.tmp").exists());
        assert_eq!(health.rejected_count("e/s", "input_error"), 1);
    }
}
