//! The producer: the dispatcher's loop, one pass at a time.
//!
//! A pass rescues expired leases when due, runs one claim round (fan out,
//! then claim the rest: `claim`) within the free slots, the rate limit and
//! the per-webhook caps, and spawns one executor task per claim. The pure
//! `LoopState::next_wait` (`wait`) turns the pass's outcome into a `Wait`;
//! `Producer::wait` carries it out (sleep, wake-up, or a write of the wake-up
//! flag). `run` is "pass, then wait"; `run_once` is one pass, then `finish`.
//!
//! Invariants: every claim holds a permit until its outcome is handed to the
//! completer, so claims never exceed `concurrency`; an outcome reaches the
//! completer before its slot is freed, so `finish` flushes every finished
//! attempt. No connection is held while a request runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::cap::Answer;
use super::claim::{fan_out_then_claim, ClaimPlan};
use super::completer::{run_completer, HeldIds, Outcome, Promoted};
use super::executor::{spread, Executor};
use super::idle::{IdleState, RESCUE_EVERY};
use super::inflight::InFlight;
use super::signals::TestSignals;
use super::wait::{LoopState, Pass, Wait, FIRST_BACKOFF, MAX_BACKOFF};
use crate::clock::SharedClock;
use crate::config::DispatchConfig;
use crate::store::{ClaimedDelivery, Store, StoreError};

/// Deliveries whose lease expired, requeued per rescue statement.
const RESCUE_BATCH: i64 = 1000;

/// What the producer and its executor tasks share.
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) clock: SharedClock,
    pub(super) config: DispatchConfig,
    pub(super) executor: Executor,
    pub(super) inflight: InFlight,
    /// A task finished and freed its slot.
    pub(super) slot_freed: Notify,
    pub(super) signals: Option<TestSignals>,
}

/// What one pass did (`run_once` reports it).
#[derive(Debug, Default)]
pub(super) struct PassReport {
    pub(super) pass: Pass,
    pub(super) events: i64,
    pub(super) deliveries: i64,
    pub(super) claimed: usize,
    pub(super) rescued: u64,
}

pub(super) struct Producer {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    completions: mpsc::Sender<Outcome>,
    completer: JoinHandle<()>,
    /// The deliveries whose outcome the completer holds: not rescued here.
    held_ids: HeldIds,
    /// Fired at the shutdown deadline: requests still in flight are dropped
    /// and their deliveries given back (each still yields an outcome).
    cut_off: CancellationToken,
    /// Poked by the listener on every NOTIFY.
    pub(super) wake: Arc<Notify>,
    /// Raised by the listener when due deliveries should be claimed.
    pub(super) wake_claim: Arc<AtomicBool>,
    state: LoopState,
}

impl Producer {
    /// A producer with its own completer task.
    pub(super) fn start(shared: Arc<Shared>) -> Producer {
        let slots = shared.config.concurrency.max(1);
        let (completions, rx) = mpsc::channel(slots * 2);
        let held_ids = HeldIds::default();
        let wake = Arc::new(Notify::new());
        let wake_claim = Arc::new(AtomicBool::new(false));
        let completer = tokio::spawn(run_completer(
            shared.store.clone(),
            rx,
            shared.clock.clone(),
            shared.signals.clone(),
            held_ids.clone(),
            Promoted {
                wake: wake.clone(),
                wake_claim: wake_claim.clone(),
            },
        ));
        Producer {
            state: LoopState::new(&shared.config),
            shared,
            permits: Arc::new(Semaphore::new(slots)),
            tasks: JoinSet::new(),
            completions,
            completer,
            held_ids,
            cut_off: CancellationToken::new(),
            wake,
            wake_claim,
        }
    }

    /// Requests in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// One pass, then the wait it asks for: the body of `run`'s loop.
    pub(super) async fn step(&mut self, shutdown: &CancellationToken) {
        let pass = match self.pass().await {
            Ok(report) => {
                self.state.error_backoff = FIRST_BACKOFF;
                report.pass
            }
            Err(e) if is_conflict(&e) => {
                // Another transaction's row won a race (a webhook deleted
                // under a fan-out, a deadlock victim, a lock not granted):
                // nothing is wrong with the database, so no backoff.
                tracing::info!(error = %e, "dispatcher pass lost a race with another transaction; retrying at once");
                self.state.claim_wanted = true;
                Pass::Backlog
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = self.state.error_backoff.as_millis() as u64, "dispatcher pass failed");
                self.state.idle = IdleState::default();
                self.state.claim_wanted = true;
                Pass::Failed
            }
        };
        let wait = self.state.next_wait(&pass, self.shared.clock.now());
        self.wait(wait, shutdown).await;
    }

    /// Rescues expired leases when due, claims within the free slots and
    /// spawns an executor task per claim.
    pub(super) async fn pass(&mut self) -> Result<PassReport, StoreError> {
        while self.tasks.try_join_next().is_some() {}
        let s = self.shared.clone();
        let mut report = PassReport::default();
        // Until the database's clock has been read once, "now" is the
        // host's clock: a skewed host would rescue live claims and write
        // short leases. Read it here; a failure fails the pass (retried
        // after the short pass backoff).
        if let Some(db) = s.clock.database().filter(|c| !c.is_calibrated()) {
            db.read(&s.store).await?;
        }
        if self
            .state
            .last_rescue
            .is_none_or(|t| t.elapsed() >= RESCUE_EVERY)
        {
            self.state.last_rescue = Some(Instant::now());
            let keep = self.held_ids.lock().expect("held ids").clone();
            report.rescued = s
                .store
                .delivery_rescue_expired_except(s.clock.now(), RESCUE_BATCH, &keep)
                .await?;
            if report.rescued > 0 {
                tracing::warn!(
                    rescued = report.rescued,
                    "requeued deliveries whose lease expired"
                );
                self.state.claim_wanted = true;
            }
        }
        report.pass = self.claim(&mut report).await?;
        metrics::gauge!("postbox_dispatcher_in_flight").set(
            (s.config
                .concurrency
                .saturating_sub(self.permits.available_permits())) as f64,
        );
        Ok(report)
    }

    async fn claim(&mut self, report: &mut PassReport) -> Result<Pass, StoreError> {
        let s = self.shared.clone();
        let free = self.permits.available_permits();
        if free == 0 {
            return Ok(Pass::Full);
        }
        let mut limit = free.min(s.config.batch_size.max(1));
        if let Some(allowed) = self.state.limiter.available() {
            limit = limit.min(allowed);
        }
        if limit == 0 {
            return Ok(Pass::RateLimited);
        }
        let plan = ClaimPlan {
            limit,
            lease: s.config.lease(),
            per_webhook: s.config.endpoint_concurrency as i64,
        };
        let safe_before = self.state.idle.safe;
        let Producer {
            permits,
            tasks,
            completions,
            wake_claim,
            state,
            cut_off,
            ..
        } = self;
        let slots = permits.clone();
        let round = fan_out_then_claim(
            &s.store,
            s.clock.now(),
            plan,
            || s.inflight.busy(slots.available_permits()),
            |fan| {
                let poked =
                    || wake_claim.swap(false, Ordering::Relaxed) || s.inflight.take_cap_freed();
                state.wants_rest(fan, poked, s.clock.now())
            },
            |d| {
                let handover = Handover {
                    completions: completions.clone(),
                    cut_off: cut_off.clone(),
                };
                spawn_attempt(&s, permits, tasks, handover, d)
            },
        )
        .await?;
        metrics::histogram!("postbox_claim_batch_size").record(round.claimed as f64);
        if let (Some(signals), true) = (&s.signals, round.claimed > 0) {
            signals.claimed(round.claimed);
        }
        (report.events, report.deliveries, report.claimed) =
            (round.fan.events, round.fan.deliveries, round.claimed);
        Ok(state.claimed(&round, limit, safe_before))
    }

    /// Carries out a `Wait` (see `LoopState::next_wait`).
    async fn wait(&mut self, wait: Wait, shutdown: &CancellationToken) {
        let s = self.shared.clone();
        match wait {
            Wait::Again { flag: None } => {}
            Wait::Again {
                flag: Some(waiting),
            } => self.say_waiting(waiting).await,
            Wait::Recheck => self.state.idle.rechecked = true,
            Wait::Slot {
                stalled_after,
                say_waiting,
            } => {
                let stalled = tokio::select! {
                    _ = s.slot_freed.notified() => false,
                    _ = tokio::time::sleep(stalled_after) => true,
                    _ = shutdown.cancelled() => false,
                };
                // Every slot is held by slow requests: this dispatcher fans
                // out nothing meanwhile, so let producers wake the others.
                if stalled && say_waiting && s.store.queue_state_set_waiting(true).await.is_ok() {
                    self.state.idle.set_flag(true);
                }
            }
            Wait::Sleep(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Wait::Backoff(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.cancelled() => {}
                }
                self.state.error_backoff = (d * 2).min(MAX_BACKOFF);
            }
            Wait::Idle { sleep, safe } => {
                self.state.begin_idle(sleep, safe);
                if let (Some(signals), true) = (&s.signals, safe) {
                    signals.went_idle();
                }
                let polled = tokio::select! {
                    _ = self.wake.notified() => false,
                    _ = s.slot_freed.notified() => false,
                    _ = tokio::time::sleep(sleep) => safe,
                    _ = shutdown.cancelled() => false,
                };
                if polled && sleep >= self.state.poll_interval {
                    // A full poll without a wake-up: another dispatcher may
                    // have cleared the flag. Say again that we wait.
                    self.state.idle.reset();
                }
            }
        }
    }

    /// Writes the wake-up flag and remembers it.
    async fn say_waiting(&mut self, waiting: bool) {
        match self.shared.store.queue_state_set_waiting(waiting).await {
            Ok(()) => self.state.idle.set_flag(waiting),
            Err(e) if waiting => {
                tracing::warn!(error = %e, "cannot set the wake-up flag");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot clear the wake-up flag"),
        }
    }

    /// Stops: lets the tasks finish (within `deadline`, if given; then the
    /// requests still in flight are cut off and their deliveries given back),
    /// and waits until the completer has written every outcome, each for as
    /// long as its lease allows.
    pub(super) async fn finish(mut self, deadline: Option<Duration>) {
        let drained = match deadline {
            Some(d) => tokio::time::timeout(d, join_all(&mut self.tasks))
                .await
                .is_ok(),
            None => {
                join_all(&mut self.tasks).await;
                true
            }
        };
        if !drained {
            tracing::warn!(
                in_flight = self.tasks.len(),
                "shutdown deadline passed; requeueing deliveries whose endpoint has not answered"
            );
            self.cut_off.cancel();
            join_all(&mut self.tasks).await;
        }
        drop(self.completions);
        let _ = self.completer.await;
    }
}

/// A foreign-key violation (23503), deadlock (40P01) or lock not available
/// (55P03): a race with another transaction, worth retrying at once.
fn is_conflict(e: &StoreError) -> bool {
    matches!(e.sql_state(), Some("23503" | "40P01" | "55P03"))
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// Where an executor task hands its outcome.
struct Handover {
    completions: mpsc::Sender<Outcome>,
    cut_off: CancellationToken,
}

fn spawn_attempt(
    s: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    handover: Handover,
    d: ClaimedDelivery,
) {
    let permit = permits
        .clone()
        .try_acquire_owned()
        .expect("claims never exceed the free slots");
    s.inflight.track(&d);
    tasks.spawn(run_attempt(s.clone(), d, permit, handover));
}

/// One executor task: the attempt, then its outcome to the completer, then
/// the slot back. A claim with less than one request timeout of lease left
/// (its statement waited on a lock) is given back unsent: a request could
/// outlive the lease, and the rescue would send it again.
async fn run_attempt(
    shared: Arc<Shared>,
    d: ClaimedDelivery,
    permit: OwnedSemaphorePermit,
    handover: Handover,
) {
    let left = (d.lease_expires_at - shared.clock.now())
        .to_std()
        .unwrap_or_default();
    let lease_ends = tokio::time::Instant::now() + left;
    let (completion, answer) = if left < shared.config.request_timeout {
        // No request was made: says nothing about the endpoint.
        (shared.executor.give_back(&d, left), Answer::NotSent)
    } else {
        shared.executor.execute(&d, &handover.cut_off).await
    };
    // Hand the outcome over before freeing the slot, so that shutdown's
    // flush sees every finished attempt. The completer drains the channel
    // even while it cannot write, so this does not wait for the database.
    for completion in spread(&d, completion) {
        // Written at once (no wait for company): what a line's next
        // delivery, a `maxInFlight` webhook's next claim, or the breaker
        // and a Retry-After hold wait on.
        let urgent = completion.ordering_key.is_some()
            || d.in_flight_limited
            || completion.endpoint_ok == Some(false)
            || completion.throttle_until.is_some();
        let outcome = Outcome {
            completion,
            lease_ends,
            urgent,
        };
        let _ = handover.completions.send(outcome).await;
    }
    shared.inflight.untrack(&d, answer);
    drop(permit);
    shared.slot_freed.notify_one();
}
