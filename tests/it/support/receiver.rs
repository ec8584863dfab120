//! A recording receiver on 127.0.0.1, port 0: keeps every request's headers
//! and body, and answers as its `Behaviour` says.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub path: String,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// Whether the Standard Webhooks headers verify against the body with
    /// `secret`, now.
    pub fn verifies(&self, secret: &str) -> bool {
        let key = postbox::signing::SigningKey::from_secret(secret).expect("a whsec_ secret");
        postbox::signing::verify(
            &key,
            Some(self.header("webhook-id")),
            Some(self.header("webhook-timestamp")),
            Some(self.header("webhook-signature")),
            &self.body,
            chrono::Utc::now().timestamp(),
            300,
        )
        .is_ok()
    }
}

/// How the receiver answers the n-th request (0-based).
pub type Behaviour = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    pub async fn ok() -> Receiver {
        Receiver::start(Arc::new(|_| Answer::status(200))).await
    }

    pub async fn start(behaviour: Behaviour) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (rec, arr) = (received.clone(), arrived.clone());
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath, headers: HeaderMap, body: Bytes| {
                    let (rec, arr, behaviour) = (rec.clone(), arr.clone(), behaviour.clone());
                    async move {
                        let n = {
                            let mut r = rec.lock().unwrap();
                            r.push(Received {
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                path: path.as_str().to_string(),
                                at: std::time::Instant::now(),
                            });
                            r.len() - 1
                        };
                        arr.notify_waiters();
                        let answer = behaviour(n);
                        if !answer.delay.is_zero() {
                            tokio::time::sleep(answer.delay).await;
                        }
                        let mut resp = warp::http::Response::builder()
                            .status(StatusCode::from_u16(answer.status).unwrap());
                        for (k, v) in &answer.headers {
                            resp = resp.header(k, v);
                        }
                        resp.body(answer.body).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver {
            addr,
            received,
            arrived,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if self.count() >= n {
                return self.all();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests within {timeout:?}, got {}",
                    self.count()
                );
            }
        }
    }
}
