//! CSV tail input: follow a CSV file as lines are appended (like `tail -F`).
//!
//! The first line of the file is the header. The byte offset of the last complete line read is
//! remembered; a partial last line waits for its newline. When the file becomes shorter than the
//! offset (truncated) or is replaced by another file (rotated), reading restarts at byte 0.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{deliver, records, sleep_or_cancel, Batch, InputContext, Record};

/// Read position in a followed file.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    header: Option<Vec<u8>>,
    file_id: Option<u64>,
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<u64> {
    None
}

impl Tail {
    /// Follows `path` from its beginning.
    pub fn new(path: PathBuf) -> Self {
        Self { path, offset: 0, header: None, file_id: None }
    }

    /// The byte offset just after the last complete line consumed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the complete lines appended since the last call and returns them as a CSV document
    /// (header first), or `None` when there is nothing new. A missing file is an error.
    pub async fn poll(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        let meta = file.metadata().await?;
        let id = file_id(&meta);
        if meta.len() < self.offset || (self.file_id.is_some() && id != self.file_id) {
            tracing::info!(path = %self.path.display(), offset = self.offset, len = meta.len(), "file truncated or rotated; reading from the start");
            self.offset = 0;
            self.header = None;
        }
        self.file_id = id;
        if meta.len() == self.offset {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(self.offset)).await?;
        let mut buf = Vec::new();
        file.take(meta.len() - self.offset).read_to_end(&mut buf).await?;
        // Only complete lines: the rest waits for its newline.
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(None);
        };
        buf.truncate(end + 1);
        self.offset += buf.len() as u64;
        let mut lines: &[u8] = &buf;
        if self.header.is_none() {
            let first = lines.iter().position(|&b| b == b'\n').map_or(lines.len(), |i| i + 1);
            self.header = Some(lines[..first].to_vec());
            lines = &lines[first..];
        }
        if lines.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(None);
        }
        let mut doc = self.header.clone().unwrap_or_default();
        doc.extend_from_slice(lines);
        Ok(Some(doc))
    }
}

/// Starts following `path`, checking for new lines every `interval_ms` milliseconds.
pub fn spawn<T: Record>(
    path: PathBuf,
    interval_ms: u64,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> JoinHandle<()> {
    tokio::spawn(run(path, interval_ms, cx, tx))
}

async fn run<T: Record>(path: PathBuf, interval_ms: u64, cx: InputContext, tx: mpsc::Sender<Batch<T>>) {
    tracing::info!(source = %cx.source_id, path = %path.display(), "csv-tail input following");
    let interval = Duration::from_millis(interval_ms.max(10));
    let mut tail = Tail::new(path);
    let mut missing_reported = false;
    loop {
        match tail.poll().await {
            Ok(Some(doc)) => {
                missing_reported = false;
                let (recs, errors) = records::parse_csv::<T>(&doc);
                if !deliver(&tx, recs, errors).await {
                    break;
                }
                // More may already be waiting: read again without sleeping.
                continue;
            }
            Ok(None) => missing_reported = false,
            Err(e) => {
                // A missing file is reported once until it appears, not on every poll.
                if !missing_reported {
                    cx.error(&format!("{}: {e}", tail.path.display()));
                }
                missing_reported = e.kind() == std::io::ErrorKind::NotFound;
            }
        }
        if !sleep_or_cancel(interval, &cx.shutdown).await {
            break;
        }
    }
    tracing::debug!(source = %cx.source_id, "csv-tail input stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Clone, serde::Deserialize)]
    struct Rec {
        ts: chrono::DateTime<chrono::Utc>,
        n: u32,
    }
    impl super::super::Timestamped for Rec {
        fn ts(&self) -> chrono::DateTime<chrono::Utc> {
            self.ts
        }
        fn set_ts(&mut self, ts: chrono::DateTime<chrono::Utc>) {
            self.ts = ts;
        }
    }

    fn append(path: &std::path::Path, s: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[tokio::test]
    async fn follows_appends_partial_lines_and_truncation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gate.csv");
        append(&path, "ts,n\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:01Z,");
        let mut tail = Tail::new(path.clone());
        let doc = tail.poll().await.unwrap().unwrap();
        let (r, e) = records::parse_csv::<Rec>(&doc);
        assert_eq!((r.len(), e.len()), (1, 0));
        assert_eq!(r[0].n, 1);
        assert_eq!(tail.poll().await.unwrap(), None, "partial line waits");
        append(&path, "2\n2026-01-01T00:00:02Z,3\n");
        let (r, _) = records::parse_csv::<Rec>(&tail.poll().await.unwrap().unwrap());
        assert_eq!(r.iter().map(|r| r.n).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(r[1].ts, "2026-01-01T00:00:02Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        // Truncated and rewritten: starts again, header re-read.
        std::fs::write(&path, "n,ts\n9,2026-01-01T00:00:09Z\n").unwrap();
        let (r, _) = records::parse_csv::<Rec>(&tail.poll().await.unwrap().unwrap());
        assert_eq!(r[0].n, 9);
        assert_eq!(tail.offset(), std::fs::metadata(&path).unwrap().len());
    }

    #[tokio::test]
    async fn task_delivers_appended_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.csv");
        append(&path, "ts,n\n");
        let cx = InputContext {
            site: "s".into(),
            source_id: "e/s".into(),
            kind: "gate",
            health: Default::default(),
            mqtt: Default::default(),
            shutdown: Default::default(),
        };
        let (tx, mut rx) = mpsc::channel::<Batch<Rec>>(4);
        let h = spawn(path.clone(), 20, cx.clone(), tx);
        append(&path, "2026-01-01T00:00:00Z,5\n2026-01-01T00:00:01Z,6\nbad,line\n");
        let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(b.records.len() + b.errors.len(), 3);
        assert_eq!(b.errors.len(), 1);
        cx.shutdown.cancel();
        h.await.unwrap();
    }
}
