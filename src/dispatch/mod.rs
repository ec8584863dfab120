//! The dispatcher: claim -> send -> complete.
//!
//! - `producer`: the loop. Each pass fans committed events out into
//!   deliveries and claims due deliveries (`claim`: committed as `sending`
//!   under a lease before any request starts) up to the free slots, and
//!   spawns one executor task per claim. Between passes it waits for a NOTIFY
//!   (`listener`), a freed slot, or a poll timer that also covers the next
//!   due retry (`idle`: the wake-up protocol; `rate`: the rate limit).
//! - `executor`: one claim -> one signed attempt (`sender`) -> a `Completion`
//!   (`retry`, pure), then its side effects (metrics, logs, 410 disable).
//! - `completer`: writes outcomes in batches, fenced by the claim's attempt.
//!
//! No transaction and no pool connection is held across an HTTP request.
//! `run_once` runs exactly one pass of the production loop, then waits for
//! its attempts and their outcomes: tests and tools exercise the same code.

mod cap;
mod claim;
mod completer;
mod executor;
mod idle;
mod inflight;
pub mod listener;
mod producer;
mod rate;
pub mod retry;
pub mod sender;
mod signals;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{Store, StoreError};
use cap::CapRule;
pub use claim::{fan_out_then_claim, Busy, ClaimPlan, Rest, Round};
use executor::Executor;
pub use executor::{disable_gone, fixed_jitter, system_jitter, Jitter};
use inflight::InFlight;
use producer::{Producer, Shared};
use sender::{Sender, SenderConfig};
pub use signals::{SignalTimeout, Signalled, TestSignals};

/// Dispatcher settings. The defaults are the constants of
/// `config::defaults`, the same ones the command line shows.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Deliveries in flight at once in this dispatcher.
    pub concurrency: usize,
    /// Deliveries in flight at once to one webhook at first (endpoint
    /// isolation). A webhook whose endpoint answers fast may grow past it,
    /// up to `concurrency - endpoint_concurrency` (see `cap`).
    pub endpoint_concurrency: usize,
    /// Deliveries started per second by this dispatcher; 0 = unlimited.
    pub rate_limit: u32,
    /// Time limit of one HTTP attempt (connect, headers and body).
    pub request_timeout: Duration,
    /// Allow endpoints on loopback, private and other non-public addresses.
    pub allow_private_targets: bool,
    /// Refuse http:// endpoint URLs.
    pub require_https: bool,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Longest sleep without a wake-up (missed notifications, due retries).
    pub poll_interval: Duration,
    /// Events fanned out per statement, and the most rows one claim takes.
    pub batch_size: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        use crate::config::defaults;
        DispatchConfig {
            concurrency: defaults::CONCURRENCY,
            endpoint_concurrency: defaults::ENDPOINT_CONCURRENCY,
            rate_limit: defaults::RATE_LIMIT,
            request_timeout: const { defaults::duration(defaults::REQUEST_TIMEOUT) },
            allow_private_targets: false,
            require_https: false,
            shutdown_timeout: const { defaults::duration(defaults::SHUTDOWN_TIMEOUT) },
            poll_interval: const { defaults::duration(defaults::POLL_INTERVAL) },
            batch_size: defaults::BATCH_SIZE,
        }
    }
}

impl DispatchConfig {
    /// How long a claim stays valid: two request timeouts plus a margin for
    /// queueing and the completion write. A dispatcher that dies loses its
    /// claims to the rescue after this long.
    pub fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(30)
    }

    /// These settings made safe to run, as start-up applies them: every
    /// count at least 1, and a poll interval of at least 10 ms (a zero poll
    /// would spin; 10 ms is already far below any use).
    pub fn clamped(self) -> Self {
        DispatchConfig {
            concurrency: self.concurrency.max(1),
            endpoint_concurrency: self.endpoint_concurrency.max(1),
            poll_interval: self.poll_interval.max(Duration::from_millis(10)),
            batch_size: self.batch_size.max(1),
            ..self
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `run_once` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnceReport {
    pub events_fanned_out: i64,
    pub deliveries_created: i64,
    pub attempts: usize,
    pub rescued: u64,
}

/// The dispatcher's inputs besides its store and settings: time, the
/// randomness behind retry jitter, and optional test signals.
#[derive(Clone)]
pub struct DispatchInputs {
    pub clock: SharedClock,
    pub jitter: Jitter,
    /// Fired on "went idle", "claimed N" and "completed N"; `None` in production.
    pub signals: Option<TestSignals>,
}

impl DispatchInputs {
    /// The production inputs: `clock`, random jitter, no signals.
    pub fn new(clock: SharedClock) -> DispatchInputs {
        DispatchInputs {
            clock,
            jitter: system_jitter(),
            signals: None,
        }
    }
}

pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        config: DispatchConfig,
        clock: SharedClock,
    ) -> Result<Dispatcher, DispatchError> {
        Dispatcher::with_inputs(store, config, DispatchInputs::new(clock))
    }

    /// Like `new`, with every input explicit (tests fix the jitter and
    /// listen to the signals).
    pub fn with_inputs(
        store: Store,
        config: DispatchConfig,
        inputs: DispatchInputs,
    ) -> Result<Dispatcher, DispatchError> {
        let DispatchInputs {
            clock,
            jitter,
            signals,
        } = inputs;
        let sender = Sender::new(
            SenderConfig {
                request_timeout: config.request_timeout,
                allow_private_targets: config.allow_private_targets,
                require_https: config.require_https,
            },
            clock.clone(),
        )?;
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                executor: Executor {
                    store: store.clone(),
                    sender,
                    clock: clock.clone(),
                    jitter,
                },
                inflight: InFlight::new(CapRule::new(
                    config.endpoint_concurrency,
                    config.concurrency,
                )),
                store,
                clock,
                config,
                slot_freed: Notify::new(),
                signals,
            }),
        })
    }

    /// Exactly one pass of the production loop (rescue, fan out and claim
    /// within the slots and caps, spawn the attempts), then waits for every
    /// attempt and for its outcome to be recorded. For tests and tools.
    pub async fn run_once(&self) -> Result<OnceReport, DispatchError> {
        let mut producer = Producer::start(self.shared.clone());
        let pass = producer.pass().await;
        producer.finish(None).await;
        let pass = pass?;
        Ok(OnceReport {
            events_fanned_out: pass.events,
            deliveries_created: pass.deliveries,
            attempts: pass.claimed,
            rescued: pass.rescued,
        })
    }

    /// Runs until `shutdown` fires, then stops claiming, lets in-flight
    /// requests finish within `shutdown_timeout`, records every outcome, and
    /// gives back what it could not finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DispatchError> {
        let s = &self.shared;
        let mut producer = Producer::start(s.clone());
        let listener_stop = CancellationToken::new();
        let listener = tokio::spawn(listener::run(
            s.store.url().to_string(),
            producer.wake.clone(),
            producer.wake_claim.clone(),
            listener_stop.clone(),
        ));
        tracing::info!(
            concurrency = s.config.concurrency,
            endpoint_concurrency = s.config.endpoint_concurrency,
            rate_limit = s.config.rate_limit,
            lease_secs = s.config.lease().as_secs(),
            "dispatcher started"
        );
        while !shutdown.is_cancelled() {
            producer.step(&shutdown).await;
        }
        tracing::info!(
            in_flight = producer.in_flight(),
            "dispatcher stopping: no more claims"
        );
        producer.finish(Some(s.config.shutdown_timeout)).await;
        listener_stop.cancel();
        let _ = listener.await;
        tracing::info!("dispatcher stopped");
        Ok(())
    }
}
