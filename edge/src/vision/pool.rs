//! Several frames in flight: N detector workers, each on its own thread with its own ONNX Runtime session
//! (sharing one copy of the pre-packed weights), fed through a bounded queue; results come back in
//! submission order.
//!
//! Why not one session with two intra-op threads: on a small CPU, NanoDet-sized convolutions do not split
//! well across threads (the threads spin and wait at every layer), while two single-threaded sessions
//! working on consecutive frames keep both cores busy and also overlap decode and pre/post-processing with
//! inference. ort's `Session::run` takes `&mut self`, so concurrent runs need one session per worker;
//! `PrepackedWeights` keeps the weights shared (see `Detector::load_workers`).
//!
//! Blocking and synchronous (std threads and channels): never call it from the async runtime.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use opencv::core::Mat;

use super::capture::Frame;
use super::detect::Detection;
use super::model::{Detector, ModelError};

/// Anything that carries an image for the detector.
pub trait HasImage: Send + 'static {
    /// The BGR frame.
    fn image(&self) -> &Mat;
}

impl HasImage for Mat {
    fn image(&self) -> &Mat {
        self
    }
}

/// An image with a caller's key (a camera id, a frame number).
impl<K: Send + 'static> HasImage for (K, Mat) {
    fn image(&self) -> &Mat {
        &self.1
    }
}

impl HasImage for Frame {
    fn image(&self) -> &Mat {
        &self.mat
    }
}

/// One finished item: what was submitted, and its detections (or why the model failed on it).
pub type Done<T> = (T, Result<Vec<Detection>, ModelError>);

/// The worker pool. Dropping it closes the queue and joins the workers after they finish what they hold.
pub struct DetectorPool<T: HasImage> {
    work: Option<SyncSender<(u64, T)>>,
    done: Receiver<(u64, Done<T>)>,
    workers: Vec<JoinHandle<()>>,
    next_in: u64,
    next_out: u64,
    early: BTreeMap<u64, Done<T>>,
    model_time: Arc<Mutex<Duration>>,
}

impl<T: HasImage> std::fmt::Debug for DetectorPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorPool")
            .field("workers", &self.workers.len())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<T: HasImage> DetectorPool<T> {
    /// Starts one thread per detector (named `{name}-infer-{i}`). The queue holds one item per worker beyond
    /// those being worked on; [`submit`](Self::submit) waits beyond that.
    pub fn start(name: &str, detectors: Vec<Detector>) -> std::io::Result<Self> {
        let n = detectors.len().max(1);
        let (work_tx, work_rx) = sync_channel::<(u64, T)>(n);
        let (done_tx, done_rx) = sync_channel::<(u64, Done<T>)>(2 * n + 1);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let model_time = Arc::new(Mutex::new(Duration::ZERO));
        let mut workers = Vec::with_capacity(n);
        for (i, mut det) in detectors.into_iter().enumerate() {
            let (rx, tx, mt) = (work_rx.clone(), done_tx.clone(), model_time.clone());
            let h = std::thread::Builder::new().name(format!("{name}-infer-{i}")).spawn(move || loop {
                // Holding the lock only while waiting for the next item.
                let next = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                let Ok((seq, item)) = next else { return };
                let before = det.model_time();
                // A panic in OpenCV/ONNX Runtime glue must not swallow the item's sequence number (the
                // results after it would wait for it forever): it comes back as that item's error.
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| det.detect(item.image())))
                    .unwrap_or_else(|p| {
                        let message = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".to_string());
                        Err(ModelError::Panicked(message))
                    });
                if let Ok(mut t) = mt.lock() {
                    *t += det.model_time() - before;
                }
                if tx.send((seq, (item, res))).is_err() {
                    return;
                }
            })?;
            workers.push(h);
        }
        Ok(Self {
            work: Some(work_tx),
            done: done_rx,
            workers,
            next_in: 0,
            next_out: 0,
            early: BTreeMap::new(),
            model_time,
        })
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Items submitted and not yet returned by [`next`](Self::next).
    pub fn in_flight(&self) -> u64 {
        self.next_in - self.next_out
    }

    /// Total time the workers spent inside ONNX Runtime (summed over workers).
    pub fn model_time(&self) -> Duration {
        self.model_time.lock().map(|t| *t).unwrap_or_default()
    }

    /// Queues `item`, waiting while the queue is full (finished items are collected meanwhile, so this never
    /// deadlocks against the workers). `false` if every worker has stopped.
    pub fn submit(&mut self, item: T) -> bool {
        let Some(tx) = &self.work else { return false };
        let mut job = (self.next_in, item);
        loop {
            match tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    job = j;
                    if let Ok((seq, d)) = self.done.recv_timeout(Duration::from_millis(2)) {
                        self.early.insert(seq, d);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        self.next_in += 1;
        true
    }

    /// True when another [`submit`](Self::submit) would not block for long: fewer than one item per worker
    /// is waiting beyond those being worked on.
    pub fn has_room(&self) -> bool {
        self.in_flight() < 2 * self.workers.len() as u64
    }

    /// The next finished item in submission order, waiting at most `wait`; `None` if none is ready in time
    /// (or nothing is in flight).
    pub fn next(&mut self, wait: Duration) -> Option<Done<T>> {
        if self.in_flight() == 0 {
            return None;
        }
        loop {
            if let Some(d) = self.early.remove(&self.next_out) {
                self.next_out += 1;
                return Some(d);
            }
            match self.done.recv_timeout(wait) {
                Ok((seq, d)) => {
                    self.early.insert(seq, d);
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    // Every worker is gone; what was in flight will never come back.
                    self.next_out = self.next_in;
                    return None;
                }
            }
        }
    }
}

impl<T: HasImage> Drop for DetectorPool<T> {
    fn drop(&mut self) {
        self.work = None;
        // Drain so no worker blocks on a full result queue, then join.
        while self.done.try_recv().is_ok() {}
        for h in self.workers.drain(..) {
            while !h.is_finished() {
                while self.done.recv_timeout(Duration::from_millis(10)).is_ok() {}
            }
            if h.join().is_err() {
                tracing::error!("a detector worker panicked");
            }
        }
    }
}
