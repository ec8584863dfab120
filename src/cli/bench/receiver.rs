//! The benchmark's receiver: answers 200 at once on `/ok/<n>`, never answers
//! on `/hang/<n>` (the isolation test's dead endpoint), records when each
//! event arrived, and verifies a sample of signatures. `ok` counts events:
//! a batch request counts its `x-webhook-batch-size`. `/flaky` (the ordering
//! part) fails some requests at random and logs every request's event id
//! and answer, in arrival order; it counts in none of the other counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngExt;
use warp::http::HeaderMap;
use warp::http::StatusCode;
use warp::Filter;

use anyhow::Context;
use postbox::signing::{verify, SigningKey};

#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub hung: AtomicU64,
    /// Requests to `/hang/<n>` still open (the client has not given up).
    pub hanging_now: AtomicU64,
    pub verified: AtomicU64,
    pub bad_signatures: AtomicU64,
    /// event id -> first arrival, while `record` is on.
    pub arrivals: Mutex<HashMap<String, Instant>>,
    pub record: std::sync::atomic::AtomicBool,
    /// `/flaky`'s requests in arrival order.
    pub flaky: Mutex<Vec<FlakyRequest>>,
}

/// One request to `/flaky`, logged when it arrived.
#[derive(Debug, Clone)]
pub struct FlakyRequest {
    /// The `webhook-id` header: the event id.
    pub event_id: String,
    /// Whether it was answered 2xx (decided on arrival).
    pub ok: bool,
    /// Whether it was held past the dispatcher's request timeout (then
    /// answered 500, if the client still waits).
    pub hung: bool,
}

/// How `/flaky` answers: in per mille of its requests, how many hang for
/// `hang` before a 500, and how many get a 500 at once; the rest a 200.
#[derive(Debug, Clone, Copy)]
pub struct Flakiness {
    pub hang_per_mille: u32,
    pub fail_per_mille: u32,
    pub hang: Duration,
}

impl Counters {
    pub fn reset(&self) {
        self.ok.store(0, Ordering::Relaxed);
        self.verified.store(0, Ordering::Relaxed);
        self.bad_signatures.store(0, Ordering::Relaxed);
    }
}

pub struct BenchReceiver {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl BenchReceiver {
    /// Starts the receiver on a free loopback port; `flaky` sets how
    /// `/flaky` answers.
    pub async fn start(secret: String, flaky: Flakiness) -> anyhow::Result<BenchReceiver> {
        let key = SigningKey::from_secret(&secret)?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let ok = warp::post()
            .and(warp::path!("ok" / u32))
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(move |_n: u32, headers: HeaderMap, body: Bytes| {
                let now = Instant::now();
                // A batch request counts each event it carries.
                let events = headers
                    .get("x-webhook-batch-size")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                let n = c.ok.fetch_add(events, Ordering::Relaxed);
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if c.record.load(Ordering::Relaxed) {
                    c.arrivals
                        .lock()
                        .expect("arrivals")
                        .entry(id.to_string())
                        .or_insert(now);
                }
                if n % 100 < events {
                    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                    let result = verify(
                        &key,
                        get("webhook-id"),
                        get("webhook-timestamp"),
                        get("webhook-signature"),
                        &body,
                        chrono::Utc::now().timestamp(),
                        300,
                    );
                    match result {
                        Ok(()) => c.verified.fetch_add(1, Ordering::Relaxed),
                        Err(_) => c.bad_signatures.fetch_add(1, Ordering::Relaxed),
                    };
                }
                warp::reply()
            });
        let c = counters.clone();
        let hang = warp::post()
            .and(warp::path!("hang" / u32))
            .then(move |_n: u32| {
                let c = c.clone();
                async move {
                    c.hung.fetch_add(1, Ordering::Relaxed);
                    c.hanging_now.fetch_add(1, Ordering::Relaxed);
                    // Dropped with the request when the client gives up.
                    let _open = Open(c.clone());
                    futures_util::future::pending::<()>().await;
                    warp::reply()
                }
            });
        // The scale part's slow endpoint: never answers, counted nowhere (its
        // requests run beside the isolation part's, which counts /hang).
        let stall = warp::post()
            .and(warp::path!("stall" / u32))
            .then(|_n: u32| async {
                futures_util::future::pending::<()>().await;
                warp::reply()
            });
        let c = counters.clone();
        let flaky_route = warp::post()
            .and(warp::path!("flaky"))
            .and(warp::header::optional::<String>("webhook-id"))
            .then(move |id: Option<String>| {
                let c = c.clone();
                async move {
                    let roll = rand::rng().random_range(0..1000u32);
                    let hung = roll < flaky.hang_per_mille;
                    let ok = roll >= flaky.hang_per_mille + flaky.fail_per_mille;
                    c.flaky.lock().expect("flaky log").push(FlakyRequest {
                        event_id: id.unwrap_or_default(),
                        ok,
                        hung,
                    });
                    if hung {
                        tokio::time::sleep(flaky.hang).await;
                    }
                    let status = if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    warp::reply::with_status(warp::reply(), status)
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bench receiver: binding a loopback port")?;
        let addr = listener.local_addr()?;
        tokio::spawn(
            warp::serve(ok.or(hang).or(stall).or(flaky_route))
                .incoming(listener)
                .run(),
        );
        Ok(BenchReceiver { addr, counters })
    }

    pub fn ok_url(&self, n: usize) -> String {
        format!("http://{}/ok/{n}", self.addr)
    }

    pub fn hang_url(&self, n: usize) -> String {
        format!("http://{}/hang/{n}", self.addr)
    }

    /// A URL that never answers and counts in none of the counters.
    pub fn stall_url(&self, n: usize) -> String {
        format!("http://{}/stall/{n}", self.addr)
    }

    /// The URL of the flaky path (see [`Flakiness`]).
    pub fn flaky_url(&self) -> String {
        format!("http://{}/flaky", self.addr)
    }

    pub fn delivered(&self) -> u64 {
        self.counters.ok.load(Ordering::Relaxed)
    }
}

/// Counts a hanging request as open until it is dropped.
struct Open(Arc<Counters>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.hanging_now.fetch_sub(1, Ordering::Relaxed);
    }
}
