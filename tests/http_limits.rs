//! The API under abuse: tokens only in the header, event streams opened with short-lived tickets and capped,
//! slow or half-sent requests timed out and capped per address while the API keeps answering others, a per-token
//! rate, and a shutdown that completes in seconds with event streams open.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_only_in_the_header_and_streams_by_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = central_embedded(dir.path());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let c = client();
    // A token in the query string is not a token.
    let r = c.get(format!("{api}/api/v1/zones?access_token={tok}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(format!("{api}/api/v1/events?access_token={tok}")).send().await.unwrap();
    assert_eq!(r.status(), 401, "not on the stream either");
    assert_eq!(c.get(format!("{api}/api/v1/zones")).bearer_auth(&tok).send().await.unwrap().status(), 200);
    // A ticket opens the stream; a made-up one does not; an unknown site is 404.
    let t: serde_json::Value =
        c.post(format!("{api}/api/v1/events/ticket")).bearer_auth(&tok).send().await.unwrap().json().await.unwrap();
    let ticket = t["ticket"].as_str().unwrap();
    assert_eq!(t["expires_in_s"], 60);
    let r = c.get(format!("{api}/api/v1/events?ticket={ticket}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);
    assert_eq!(c.get(format!("{api}/api/v1/events?ticket=cgs_forged")).send().await.unwrap().status(), 401);
    let r = c.get(format!("{api}/api/v1/events?site=nope&ticket={ticket}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(c.post(format!("{api}/api/v1/events/ticket")).send().await.unwrap().status(), 401, "needs a token");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_and_end_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.api.max_event_streams = 5;
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let c = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..5 {
        let r = c.get(format!("{api}/api/v1/events")).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let sixth = c.get(format!("{api}/api/v1/events")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(sixth.status(), 503, "the sixth stream is refused");
    // One closes: its slot is free again.
    drop(open.pop());
    let again = eventually(Duration::from_secs(5), "a freed stream slot", || async {
        let r = c.get(format!("{api}/api/v1/events")).bearer_auth(&tok).send().await.unwrap();
        (r.status() == 200).then_some(r)
    })
    .await;
    open.push(again);
    // Shutdown with five streams open completes in seconds, and each stream ends.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), central.stop()).await.expect("the centre stops with streams open");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    for r in open {
        let body = tokio::time::timeout(Duration::from_secs(5), r.bytes()).await.expect("the stream ended");
        assert!(body.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out_and_capped_while_the_api_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.api.limits.max_per_ip = 50;
    loaded.config.api.limits.header_read_timeout_s = 2;
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let addr: SocketAddr = central.api_addr;
    // 400 half-sent requests from 127.0.0.2 (another loopback address): only 50 are kept open.
    let mut attackers = Vec::new();
    for _ in 0..400 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        // The server may already have closed it (over the cap): a failed write is fine.
        let _ = s.write_all(b"GET /api/v1/zones HTTP/1.1\r\nHost: x\r\n").await;
        attackers.push(s);
    }
    // Meanwhile the API answers a well-behaved client from 127.0.0.1, quickly.
    let c = client();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(c.get(format!("{api}/api/v1/zones")).bearer_auth(&tok).send().await.unwrap().status(), 200);
        assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
    }
    let m = central.metrics.clone();
    assert_eq!(m.http_refused.get(), 350, "connections over the per-address cap refused at once");
    // After the header timeout (2 s) the half-sent ones are closed too: every attacker socket ends.
    let started = Instant::now();
    for mut s in attackers {
        let ended = tokio::time::timeout(Duration::from_secs(6), async {
            let mut buf = [0u8; 512];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // hyper may answer 408 before closing
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a half-sent request was still open after {:?}", started.elapsed());
    }
    eventually(Duration::from_secs(5), "no connection left open", || async {
        (m.http_connections.get() == 0).then_some(())
    })
    .await;
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_arrives_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = central_embedded(dir.path());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let tok = admin(&db).await;
    let mut s = tokio::net::TcpStream::connect(central.api_addr).await.unwrap();
    // The head promises 100 bytes of body; none come.
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(crowdgrid::api::BODY_TIMEOUT + Duration::from_secs(5), s.read_to_end(&mut answer));
    read.await.expect("the server answers and closes within the body timeout").unwrap();
    let text = String::from_utf8_lossy(&answer);
    // axum's JSON extractor answers the body timeout as 400 with the reason.
    assert!(text.starts_with("HTTP/1.1 4") && text.contains("not received within the designated timeout"), "{text}");
    assert!(started.elapsed() >= crowdgrid::api::BODY_TIMEOUT - Duration::from_secs(1));
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_a_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.api.rate_per_token = 1.0;
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let (a, b) = (admin(&db).await, admin(&db).await);
    let c = client();
    let mut codes = Vec::new();
    for _ in 0..15 {
        codes.push(c.get(format!("{api}/api/v1/me")).bearer_auth(&a).send().await.unwrap().status().as_u16());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 10, "a burst of ten: {codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 5, "{codes:?}");
    assert_eq!(c.get(format!("{api}/api/v1/me")).bearer_auth(&b).send().await.unwrap().status(), 200, "another token");
    assert_eq!(central.metrics.http_rate_limited.get(), 5);
    central.stop().await;
}
