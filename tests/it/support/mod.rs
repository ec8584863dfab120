//! Test bundle: a fresh database, a recording receiver, row factories, and a
//! dispatcher running as `serve` runs it.

pub mod cluster;
pub mod db;
pub mod hostile;
pub mod receiver;
pub mod signals;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use postbox::clock::{SharedClock, SystemClock};
use postbox::config::DispatchConfig;
use postbox::dispatch::Dispatcher;
use postbox::store::Store;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use db::TestDb;
pub use receiver::{Answer, Receiver};
pub use signals::{signalled, spawn_signalled};

/// A webhook row, written with plain SQL as a psql user would.
pub struct NewWebhook<'a> {
    pub owner: &'a str,
    pub url: String,
    pub events: &'a [&'a str],
    pub max_retries: i32,
    pub retry_delay_seconds: i32,
    pub active: bool,
    /// The `filter`, `template` and `batch` columns (V9); `None`: NULL.
    pub filter: Option<serde_json::Value>,
    pub template: Option<serde_json::Value>,
    pub batch: Option<serde_json::Value>,
}

impl<'a> NewWebhook<'a> {
    pub fn new(owner: &'a str, url: String, events: &'a [&'a str]) -> Self {
        NewWebhook {
            owner,
            url,
            events,
            max_retries: 3,
            retry_delay_seconds: 60,
            active: true,
            filter: None,
            template: None,
            batch: None,
        }
    }

    /// Inserts the row; returns its id and secret.
    pub async fn insert(&self, client: &tokio_postgres::Client) -> (Uuid, String) {
        let events: Vec<String> = self.events.iter().map(|s| s.to_string()).collect();
        let row = client
            .query_one(
                "INSERT INTO postbox.webhooks (owner_id, name, url, event_types, max_retries, retry_delay_seconds, active,
                                               filter, template, batch)
                 VALUES ($1, 'test', $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, secret",
                &[&self.owner, &self.url, &events, &self.max_retries, &self.retry_delay_seconds, &self.active,
                  &self.filter, &self.template, &self.batch],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }
}

pub fn dispatch_config() -> DispatchConfig {
    DispatchConfig {
        allow_private_targets: true,
        request_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(5),
        ..DispatchConfig::default()
    }
}

pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// A dispatcher running in the background until the returned token fires.
pub struct Running {
    pub stop: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("dispatcher stops within its deadline")
            .unwrap();
    }
}

pub fn spawn_dispatcher(store: Store, config: DispatchConfig, clock: SharedClock) -> Running {
    let stop = CancellationToken::new();
    let dispatcher = Dispatcher::new(store, config, clock).unwrap();
    let s = stop.clone();
    let handle = tokio::spawn(async move { dispatcher.run(s).await.unwrap() });
    Running { stop, handle }
}

/// Polls `check` every 20 ms until it returns true; panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn publish(
    client: &tokio_postgres::Client,
    event_type: &str,
    payload: serde_json::Value,
    owner: &str,
) -> Uuid {
    client
        .query_one(
            "SELECT postbox.publish($1, $2, $3)",
            &[&event_type, &payload, &owner],
        )
        .await
        .unwrap()
        .get(0)
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The API's shared state for a test database, as `app::serve` builds it.
pub fn api_state(store: Store, jwt_secret: &str, allow_private: bool) -> postbox::api::ApiState {
    let clock = system_clock();
    let config = DispatchConfig {
        request_timeout: Duration::from_secs(5),
        allow_private_targets: allow_private,
        ..DispatchConfig::default()
    };
    let sender =
        postbox::dispatch::sender::Sender::new(config.sender_config(), clock.clone()).unwrap();
    postbox::api::ApiState {
        store,
        jwt_secret: jwt_secret.into(),
        jwt_issuer: None,
        jwt_audience: None,
        metrics: postbox::telemetry::metrics_handle(),
        stripe_webhook_secret: None,
        clerk_webhook_secret: None,
        allow_private_targets: allow_private,
        require_https: false,
        sender,
        clock,
        new_secret: postbox::api::system_secrets(),
        test_lease: Duration::from_secs(60),
        portal: postbox::config::PortalConfig::default(),
    }
}

/// A host clock that runs ahead of the others (as an unsynchronised host's
/// would): production treats it as the system clock, so the dispatcher
/// calibrates it against the database.
pub struct SkewedHostClock(pub postbox::clock::ShiftedClock);

impl postbox::clock::Clock for SkewedHostClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.now()
    }

    fn is_system(&self) -> bool {
        true
    }
}
