//! HTTP poll input: GET a URL on an interval; the body is JSON or CSV.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{deliver, records, Batch, InputContext, InputError, Record};

/// Starts polling `url` every `interval_s` seconds with a `timeout_s` request timeout.
pub fn spawn<T: Record>(
    url: String,
    interval_s: u64,
    timeout_s: u64,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> Result<JoinHandle<()>, InputError> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(timeout_s.max(1))).build()?;
    Ok(tokio::spawn(run(client, url, interval_s, cx, tx)))
}

async fn run<T: Record>(
    client: reqwest::Client,
    url: String,
    interval_s: u64,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(interval_s.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(source = %cx.source_id, url = %url, interval_s, "http input polling");
    loop {
        tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let fetched = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            r = fetch(&client, &url) => r,
        };
        match fetched {
            Ok((content_type, body)) => {
                let (recs, errors) = records::parse_auto::<T>(content_type.as_deref(), &body);
                tracing::debug!(source = %cx.source_id, records = recs.len(), errors = errors.len(), "http poll");
                if !deliver(&tx, recs, errors).await {
                    break;
                }
            }
            Err(e) => cx.error(&format!("GET {url}: {e}")),
        }
    }
    tracing::debug!(source = %cx.source_id, "http input stopped");
}

/// GETs `url`, failing on a non-success status; returns the content type and body.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<(Option<String>, Vec<u8>), reqwest::Error> {
    let resp = client.get(url).send().await?.error_for_status()?;
    let content_type =
        resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.bytes().await?;
    Ok((content_type, body.to_vec()))
}
