//! Replay input: play a recorded file (CSV, or JSON/NDJSON) back in real time, re-stamped so the
//! first record happens "now": `new_ts = now_at_start + (ts − first_ts) / speed`. Each record is
//! delivered when its new timestamp arrives; with `loop`, playback restarts with a fresh start time.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{records, Batch, InputContext, Record};

/// How far after the start of playback a record recorded at `ts` is due.
pub fn offset(first: DateTime<Utc>, ts: DateTime<Utc>, speed: f64) -> Duration {
    let recorded = (ts - first).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
    let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
    Duration::from_secs_f64((recorded / speed).min(1e9))
}

/// Starts replaying `path` at `speed`, forever if `looping`.
pub fn spawn<T: Record>(
    path: PathBuf,
    speed: f64,
    looping: bool,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> JoinHandle<()> {
    tokio::spawn(run(path, speed, looping, cx, tx))
}

async fn run<T: Record>(path: PathBuf, speed: f64, looping: bool, cx: InputContext, tx: mpsc::Sender<Batch<T>>) {
    let body = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) => {
            cx.error(&format!("replay {}: {e}", path.display()));
            return;
        }
    };
    let (mut recs, errors) = records::parse::<T>(records::detect_path(&path, &body), &body);
    if !errors.is_empty() {
        let first = errors.first().map(String::as_str).unwrap_or_default();
        cx.error(&format!("replay {}: {} records skipped; first: {first}", path.display(), errors.len()));
    }
    // A recording should already be in order; a stable sort keeps equal timestamps in file order.
    recs.sort_by_key(|r| r.ts());
    let Some(first) = recs.first().map(|r| r.ts()) else {
        cx.error(&format!("replay {}: no records", path.display()));
        return;
    };
    let offsets: Vec<Duration> = recs.iter().map(|r| offset(first, r.ts(), speed)).collect();
    tracing::info!(source = %cx.source_id, path = %path.display(), records = recs.len(), speed, looping, "replay input starting");
    let mut restart = false;
    loop {
        if !play_once(&recs, &offsets, &cx, &tx, restart).await {
            break;
        }
        // The next pass replays the same data from its beginning: the source must start over too (a gate's
        // occupancy would otherwise add the second pass's entries to the first's).
        restart = true;
        if !looping {
            tracing::info!(source = %cx.source_id, "replay finished");
            break;
        }
    }
}

/// Plays every record once; returns false on shutdown or when the source is gone.
async fn play_once<T: Record>(
    recs: &[T],
    offsets: &[Duration],
    cx: &InputContext,
    tx: &mpsc::Sender<Batch<T>>,
    restart: bool,
) -> bool {
    let start_wall = Utc::now();
    let mut restart = restart;
    let start = tokio::time::Instant::now();
    let mut i = 0;
    while i < recs.len() {
        let due = offsets[i];
        tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(start + due) => {}
        }
        // Records due at the same moment travel together.
        let mut batch = Vec::new();
        while i < recs.len() && offsets[i] == due {
            let mut r = recs[i].clone();
            let new_ts = start_wall + chrono::Duration::from_std(due).unwrap_or(chrono::Duration::zero());
            r.set_ts(new_ts);
            batch.push(r);
            i += 1;
        }
        let mut b = Batch::new(batch, Vec::new());
        b.restart = std::mem::take(&mut restart);
        if tx.send(b).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Timestamped;

    #[derive(Debug, Clone, serde::Deserialize)]
    struct Rec {
        ts: DateTime<Utc>,
        n: u32,
    }
    impl Timestamped for Rec {
        fn ts(&self) -> DateTime<Utc> {
            self.ts
        }
        fn set_ts(&mut self, ts: DateTime<Utc>) {
            self.ts = ts;
        }
    }

    #[test]
    fn offsets_scale_with_speed() {
        let t0: DateTime<Utc> = "2026-05-01T08:00:00Z".parse().unwrap();
        assert_eq!(offset(t0, t0 + chrono::Duration::minutes(2), 60.0), Duration::from_secs(2));
        assert_eq!(offset(t0, t0 - chrono::Duration::minutes(2), 60.0), Duration::ZERO);
    }

    #[tokio::test]
    async fn restamps_and_paces_records() {
        tokio::time::pause();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rec.csv");
        std::fs::write(
            &path,
            "ts,n\n2026-05-01T08:00:00+08:00,1\n2026-05-01T08:01:00+08:00,2\n2026-05-01T08:01:00+08:00,3\n2026-05-01T08:03:00+08:00,4\n",
        )
        .unwrap();
        let cx = InputContext {
            site: "s".into(),
            source_id: "e/r".into(),
            kind: "gate",
            health: Default::default(),
            mqtt: Default::default(),
            shutdown: Default::default(),
        };
        let (tx, mut rx) = mpsc::channel::<Batch<Rec>>(8);
        let before = Utc::now();
        let start = tokio::time::Instant::now();
        let h = spawn(path, 60.0, true, cx.clone(), tx);
        let mut got = Vec::new();
        let mut restarts = Vec::new();
        for _ in 0..4 {
            let b = rx.recv().await.unwrap();
            restarts.push(b.restart);
            got.push((start.elapsed(), b.records));
        }
        assert_eq!(restarts, vec![false, false, false, true], "the loop's second pass says it started over");
        // Due at 0 s, 1 s (two records together), 3 s, then the loop starts again at once.
        assert_eq!(got[0].1.len(), 1);
        assert_eq!(got[1].1.iter().map(|r| r.n).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(got[1].0.as_secs(), 1);
        assert_eq!(got[2].0.as_secs(), 3);
        assert_eq!(got[3].1[0].n, 1);
        let t0 = got[0].1[0].ts;
        assert!(t0 >= before && t0 - before < chrono::Duration::seconds(5));
        assert_eq!(got[1].1[0].ts - t0, chrono::Duration::seconds(1));
        assert_eq!(got[2].1[0].ts - t0, chrono::Duration::seconds(3));
        cx.shutdown.cancel();
        h.await.unwrap();
    }
}
