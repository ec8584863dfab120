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
mod listener;
mod producer;
mod rate;
/// The pure retry schedule and outcome classification.
pub mod retry;
/// One signed HTTP attempt.
pub mod sender;
mod signals;
mod wait;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::DispatchConfig;
use crate::error::DispatchError;
use crate::store::Store;
use cap::CapRule;
pub use claim::{fan_out_then_claim, Busy, ClaimPlan, Rest, Round};
use executor::Executor;
pub use executor::{disable_gone, fixed_jitter, system_jitter, Jitter};
use inflight::InFlight;
use producer::{Producer, Shared};
use sender::Sender;
pub use signals::{SignalTimeout, Signalled, TestSignals};

/// What `run_once` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnceReport {
    /// Events turned into deliveries by the fan-out.
    pub events_fanned_out: i64,
    /// Deliveries the fan-out created.
    pub deliveries_created: i64,
    /// Deliveries claimed and attempted (each outcome recorded).
    pub attempts: usize,
    /// Deliveries whose expired lease the pass returned to the queue.
    pub rescued: u64,
}

/// The dispatcher's inputs besides its store and settings: time, the
/// randomness behind retry jitter, and optional test signals.
#[derive(Clone)]
pub struct DispatchInputs {
    /// Where the dispatcher reads the time.
    pub clock: SharedClock,
    /// The randomness behind retry jitter.
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

/// One dispatcher: claims due deliveries, sends them, records outcomes.
/// Several may run against one database; claims never overlap.
pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    /// A dispatcher with production inputs (random jitter, no test
    /// signals). `config` is clamped (see `DispatchConfig::clamped`). Fails
    /// only if the HTTP client cannot be built.
    pub fn new(
        store: Store,
        config: DispatchConfig,
        clock: SharedClock,
    ) -> Result<Dispatcher, DispatchError> {
        Dispatcher::with_inputs(store, config, DispatchInputs::new(clock))
    }

    /// Like `new`, with every input explicit (tests fix the jitter and
    /// listen to the signals). `config` is clamped here, so a zero count
    /// from a library caller cannot underflow or spin.
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
        // A library caller may pass any numbers: zero slots would underflow
        // the in-flight count and a zero poll would spin.
        let config = config.clamped();
        let sender = Sender::new(config.sender_config(), clock.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::defaults;

    #[tokio::test]
    async fn a_library_caller_s_zero_counts_are_clamped() {
        // The pool connects lazily: nothing here touches a database.
        let store = Store::connect(defaults::DATABASE_URL, 1).unwrap();
        let config = DispatchConfig {
            concurrency: 0,
            endpoint_concurrency: 0,
            batch_size: 0,
            poll_interval: std::time::Duration::ZERO,
            ..DispatchConfig::default()
        };
        let d = Dispatcher::new(store, config, Arc::new(SystemClock)).unwrap();
        let c = &d.shared.config;
        assert_eq!(
            (c.concurrency, c.endpoint_concurrency, c.batch_size),
            (1, 1, 1)
        );
        assert!(c.poll_interval >= std::time::Duration::from_millis(10));
    }
}
