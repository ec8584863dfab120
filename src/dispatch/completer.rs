//! The completer: records attempt outcomes in batches, off the request path.
//!
//! Whatever has arrived while the previous write ran goes in the next one;
//! each write is fenced by the claim's attempt number (see
//! `sql/delivery_complete_many.sql`), so a superseded outcome changes nothing.
//!
//! An outcome that arrived is kept until it is written, also past its lease
//! (up to `KEEP_PAST_LEASE` after it, and `MAX_HELD` outcomes in all): a
//! failed write (the database away) is retried with a backoff, an outcome
//! whose row another transaction holds locked (skipped, not waited for) is
//! retried on its own, and neither holds up the others. A late write is safe:
//! the fencing token and the rescued marker (`sql/delivery_complete_many.sql`)
//! make it count while the row was not claimed again, and change nothing
//! after. The ids held are published (`HeldIds`) so that this dispatcher's
//! rescue leaves those rows alone. The channel is drained while outcomes
//! wait, so executors never block on it and claiming goes on. It ends once
//! every sender is gone and every held outcome is written or given up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::signals::TestSignals;
use crate::clock::SharedClock;
use crate::store::{Completion, Store};

/// The most outcomes one statement writes.
const BATCH: usize = 1024;
/// Below this many outcomes in hand, the completer waits up to `LINGER` for
/// more before it writes: at a steady trickle (1,000 deliveries/s) one
/// statement per outcome cost about a quarter of a core of database time,
/// taken from the next event's fan-out and request. Under a backlog batches
/// fill at once and nothing waits.
const LINGER_BELOW: usize = 64;
/// The longest such wait: far below any lease, and each outcome's attempt
/// row and status reach the database this much later at most.
const LINGER: Duration = Duration::from_millis(20);
/// First wait after a failed write; doubles up to `MAX_ERROR_DELAY`.
const FIRST_ERROR_DELAY: Duration = Duration::from_millis(50);
const MAX_ERROR_DELAY: Duration = Duration::from_secs(2);
/// First wait before writing a skipped (locked) outcome again; doubles up to
/// `MAX_LOCKED_DELAY`.
const FIRST_LOCKED_DELAY: Duration = Duration::from_millis(100);
const MAX_LOCKED_DELAY: Duration = Duration::from_secs(2);
/// How long past its lease an outcome is still kept for writing.
const KEEP_PAST_LEASE: Duration = Duration::from_secs(300);
/// The most outcomes held at once; beyond it the ones whose lease ended
/// first are given up (`postbox_outcomes_dropped_total`).
const MAX_HELD: usize = 100_000;

/// The delivery ids whose outcome the completer holds unwritten, shared with
/// the producer's rescue (which skips them: their outcome is in hand).
pub(super) type HeldIds = Arc<Mutex<Vec<uuid::Uuid>>>;

/// How the completer tells the producer that outcomes promoted held
/// deliveries of ordered lines (due now): the same wake-up a NOTIFY gives.
pub(super) struct Promoted {
    pub(super) wake: Arc<tokio::sync::Notify>,
    pub(super) wake_claim: Arc<std::sync::atomic::AtomicBool>,
}

impl Promoted {
    fn tell(&self) {
        self.wake_claim
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// An attempt's outcome on its way to the database.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) completion: Completion,
    /// When the claim's lease runs out (from the lease the database
    /// returned, by this process's clock). Past it another dispatcher's
    /// rescue may take the row, but the outcome is still kept for
    /// `KEEP_PAST_LEASE`: it counts until the row is claimed again.
    pub(super) lease_ends: Instant,
    /// Written without waiting for company (`LINGER`): an ordered line's
    /// next delivery, a `maxInFlight` webhook's next claim, or the breaker
    /// and a Retry-After hold (a failed or throttled attempt) wait for it.
    pub(super) urgent: bool,
}

/// An outcome waiting for its (next) write.
#[derive(Debug)]
struct Held {
    outcome: Outcome,
    retry_at: Instant,
    /// The wait before the next write if this one is skipped again.
    locked_delay: Duration,
}

/// The outcomes not yet written, and when to try each: pure bookkeeping,
/// the instants come from the caller.
#[derive(Debug)]
pub(super) struct Backlog {
    held: Vec<Held>,
    /// After a failed write, nothing is tried before this instant.
    paused_until: Option<Instant>,
    error_delay: Duration,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            held: Vec::new(),
            paused_until: None,
            error_delay: FIRST_ERROR_DELAY,
        }
    }
}

impl Backlog {
    fn len(&self) -> usize {
        self.held.len()
    }

    /// New outcomes: written at the next write, unless the database failed
    /// the last one (then with the others, after the backoff).
    fn add(&mut self, fresh: Vec<Outcome>, now: Instant) {
        let at = self.paused_until.map_or(now, |p| p.max(now));
        self.held.extend(fresh.into_iter().map(|outcome| Held {
            outcome,
            retry_at: at,
            locked_delay: FIRST_LOCKED_DELAY,
        }));
    }

    /// Drops the outcomes kept `KEEP_PAST_LEASE` past their lease, and the
    /// ones whose lease ended first while more than `max` are held; returns
    /// them.
    fn expire(&mut self, now: Instant, max: usize) -> Vec<Outcome> {
        let (mut gone, mut kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.outcome.lease_ends + KEEP_PAST_LEASE <= now);
        if kept.len() > max {
            kept.sort_by_key(|h| h.outcome.lease_ends);
            gone.extend(kept.drain(..kept.len() - max));
        }
        self.held = kept;
        gone.into_iter().map(|h| h.outcome).collect()
    }

    /// The delivery ids held.
    fn ids(&self) -> Vec<uuid::Uuid> {
        self.held
            .iter()
            .map(|h| h.outcome.completion.delivery_id)
            .collect()
    }

    /// When the next write is due, if anything waits.
    fn next_retry(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.retry_at).min()
    }

    /// Takes up to `max` outcomes due at `now`.
    fn take_due(&mut self, now: Instant, max: usize) -> Vec<Held> {
        let mut due = Vec::new();
        let mut kept = Vec::with_capacity(self.held.len());
        for h in std::mem::take(&mut self.held) {
            if h.retry_at <= now && due.len() < max {
                due.push(h);
            } else {
                kept.push(h);
            }
        }
        self.held = kept;
        due
    }

    /// The write of `batch` succeeded; the outcomes whose delivery id is in
    /// `skipped` were locked elsewhere and wait again, each on its own backoff.
    fn written(&mut self, batch: Vec<Held>, skipped: &[uuid::Uuid], now: Instant) {
        self.paused_until = None;
        self.error_delay = FIRST_ERROR_DELAY;
        for mut h in batch {
            if skipped.contains(&h.outcome.completion.delivery_id) {
                h.retry_at = now + h.locked_delay;
                h.locked_delay = (h.locked_delay * 2).min(MAX_LOCKED_DELAY);
                self.held.push(h);
            }
        }
    }

    /// The write of `batch` failed: everything waits for the backoff.
    fn failed(&mut self, batch: Vec<Held>, now: Instant) {
        let at = now + self.error_delay;
        self.error_delay = (self.error_delay * 2).min(MAX_ERROR_DELAY);
        self.paused_until = Some(at);
        for mut h in batch {
            h.retry_at = at;
            self.held.push(h);
        }
        for h in &mut self.held {
            h.retry_at = h.retry_at.max(at);
        }
    }
}

/// Writes outcomes until the channel closes and the backlog is empty.
pub(super) async fn run_completer(
    store: Store,
    mut rx: mpsc::Receiver<Outcome>,
    clock: SharedClock,
    signals: Option<TestSignals>,
    held_ids: HeldIds,
    promoted: Promoted,
) {
    let mut backlog = Backlog::default();
    let mut open = true;
    loop {
        let mut fresh = Vec::new();
        match (open, backlog.next_retry()) {
            (true, None) => open = rx.recv_many(&mut fresh, BATCH).await > 0,
            (true, Some(at)) => {
                tokio::select! {
                    n = rx.recv_many(&mut fresh, BATCH) => open = n > 0,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            (false, Some(at)) => tokio::time::sleep_until(at).await,
            (false, None) => return,
        }
        if open
            && !fresh.is_empty()
            && fresh.len() < LINGER_BELOW
            && !fresh.iter().any(|o| o.urgent)
        {
            open = linger(&mut rx, &mut fresh).await;
        }
        let now = Instant::now();
        backlog.add(fresh, now);
        let expired = backlog.expire(now, MAX_HELD);
        if !expired.is_empty() {
            metrics::counter!("postbox_outcomes_dropped_total").increment(expired.len() as u64);
            tracing::error!(
                outcomes = expired.len(),
                "giving up recording outcomes long past their lease; the lease rescue sends them again"
            );
        }
        let batch = backlog.take_due(now, BATCH);
        if !batch.is_empty() {
            *held_ids.lock().expect("held ids") = batch
                .iter()
                .map(|h| h.outcome.completion.delivery_id)
                .chain(backlog.ids())
                .collect();
            if write(&store, &clock, &signals, &mut backlog, batch).await > 0 {
                promoted.tell();
            }
        }
        *held_ids.lock().expect("held ids") = backlog.ids();
        metrics::gauge!("postbox_outcomes_unwritten").set(backlog.len() as f64);
    }
}

/// Waits up to `LINGER` for more outcomes, until `LINGER_BELOW` are in
/// `fresh` or an urgent one arrives. Returns false when the channel closed.
async fn linger(rx: &mut mpsc::Receiver<Outcome>, fresh: &mut Vec<Outcome>) -> bool {
    let until = Instant::now() + LINGER;
    while fresh.len() < LINGER_BELOW {
        let had = fresh.len();
        match tokio::time::timeout_at(until, rx.recv_many(fresh, BATCH - had)).await {
            Ok(0) => return false,
            Ok(_) if fresh[had..].iter().any(|o| o.urgent) => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    true
}

/// One write of `batch`; what is not written goes back to the backlog.
/// Returns how many held deliveries it promoted.
async fn write(
    store: &Store,
    clock: &SharedClock,
    signals: &Option<TestSignals>,
    backlog: &mut Backlog,
    batch: Vec<Held>,
) -> u64 {
    let completions: Vec<Completion> = batch.iter().map(|h| h.outcome.completion.clone()).collect();
    match store
        .delivery_complete_many(&completions, clock.now())
        .await
    {
        Ok(report) => {
            for (webhook_id, state) in &report.breaker {
                tracing::warn!(%webhook_id, state = %state, "circuit breaker changed state");
                metrics::counter!("postbox_breaker_transitions_total", "state" => state.clone())
                    .increment(1);
            }
            let skipped = report.skipped.len();
            if skipped > 0 {
                tracing::info!(
                    outcomes = skipped,
                    "outcomes wait for rows another transaction holds locked"
                );
            }
            if let Some(s) = signals {
                s.completed(batch.len() - skipped);
                s.skipped(skipped);
            }
            backlog.written(batch, &report.skipped, Instant::now());
            report.promoted
        }
        Err(e) => {
            tracing::warn!(error = %e, outcomes = batch.len() + backlog.len(), "recording outcomes failed; retrying until their leases run out");
            if let Some(s) = signals {
                s.write_failed();
            }
            backlog.failed(batch, Instant::now());
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClaimedDelivery;

    fn outcome(id: u128, deadline: Instant) -> Outcome {
        let d = ClaimedDelivery {
            id: uuid::Uuid::from_u128(id),
            ..ClaimedDelivery::sample()
        };
        let attempt = super::super::retry::Attempt::default();
        Outcome {
            completion: super::super::retry::complete(
                &d,
                &attempt,
                chrono::DateTime::UNIX_EPOCH,
                0.0,
            ),
            lease_ends: deadline,
            urgent: false,
        }
    }

    fn ids(held: &[Held]) -> Vec<u128> {
        held.iter()
            .map(|h| h.outcome.completion.delivery_id.as_u128())
            .collect()
    }

    #[test]
    fn a_failed_write_keeps_every_outcome_until_long_past_its_lease() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        b.add(
            vec![
                outcome(1, t0 + Duration::from_secs(1)),
                outcome(2, t0 + Duration::from_secs(60)),
            ],
            t0,
        );
        let batch = b.take_due(t0, BATCH);
        assert_eq!(ids(&batch), [1, 2]);
        b.failed(batch, t0);
        assert_eq!(b.next_retry(), Some(t0 + FIRST_ERROR_DELAY));
        // New outcomes wait for the backoff too.
        b.add(vec![outcome(3, t0 + Duration::from_secs(60))], t0);
        assert!(b.take_due(t0, BATCH).is_empty());
        // The backoff grows, capped.
        let mut now = t0;
        for _ in 0..20 {
            now = b.next_retry().unwrap();
            let batch = b.take_due(now, BATCH);
            b.failed(batch, now);
        }
        assert_eq!(b.next_retry(), Some(now + MAX_ERROR_DELAY));
        // Past its lease an outcome is kept (a late write is fenced), until
        // KEEP_PAST_LEASE; the others stay.
        assert!(b.expire(t0 + Duration::from_secs(2), BATCH).is_empty());
        let gone = b.expire(t0 + Duration::from_secs(1) + KEEP_PAST_LEASE, BATCH);
        assert_eq!(gone.len(), 1);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn over_the_cap_the_outcomes_whose_lease_ended_first_are_given_up() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        b.add(
            (0..5)
                .map(|i| outcome(i, t0 + Duration::from_secs(10 - i as u64)))
                .collect(),
            t0,
        );
        let gone = b.expire(t0, 3);
        let mut gone: Vec<u128> = gone
            .iter()
            .map(|o| o.completion.delivery_id.as_u128())
            .collect();
        gone.sort();
        assert_eq!(gone, [3, 4]);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_skipped_outcome_waits_alone_and_the_others_are_done() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(60);
        let mut b = Backlog::default();
        b.add(vec![outcome(1, deadline), outcome(2, deadline)], t0);
        let batch = b.take_due(t0, BATCH);
        b.written(batch, &[uuid::Uuid::from_u128(2)], t0);
        assert_eq!(b.len(), 1);
        assert_eq!(b.next_retry(), Some(t0 + FIRST_LOCKED_DELAY));
        // A new outcome is written at once, not after the locked one.
        b.add(vec![outcome(3, deadline)], t0);
        assert_eq!(ids(&b.take_due(t0, BATCH)), [3]);
        let again = b.take_due(t0 + FIRST_LOCKED_DELAY, BATCH);
        assert_eq!(ids(&again), [2]);
        b.written(again, &[uuid::Uuid::from_u128(2)], t0);
        assert_eq!(b.next_retry(), Some(t0 + FIRST_LOCKED_DELAY * 2));
    }

    #[test]
    fn a_write_takes_at_most_a_batch() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        b.add(
            (0..5)
                .map(|i| outcome(i, t0 + Duration::from_secs(9)))
                .collect(),
            t0,
        );
        assert_eq!(b.take_due(t0, 3).len(), 3);
        assert_eq!(b.take_due(t0, 3).len(), 2);
    }

    #[tokio::test]
    async fn a_lone_outcome_waits_for_company_then_goes() {
        let (tx, mut rx) = mpsc::channel(8);
        let t0 = Instant::now();
        let mut fresh = vec![outcome(1, t0)];
        assert!(linger(&mut rx, &mut fresh).await, "the channel is open");
        assert!(t0.elapsed() >= LINGER, "it waited for company");
        assert_eq!(fresh.len(), 1);
        drop(tx);
    }

    #[tokio::test]
    async fn company_and_a_closed_channel_are_kept() {
        let (tx, mut rx) = mpsc::channel(8);
        let t0 = Instant::now();
        tx.send(outcome(2, t0)).await.expect("open");
        tx.send(Outcome {
            urgent: true,
            ..outcome(3, t0)
        })
        .await
        .expect("open");
        let mut fresh = vec![outcome(1, t0)];
        // An urgent outcome ends the wait with what came before it.
        assert!(linger(&mut rx, &mut fresh).await);
        assert_eq!(fresh.len(), 3);
        tx.send(outcome(4, t0)).await.expect("open");
        drop(tx);
        let mut fresh = vec![outcome(5, t0)];
        // The producer is gone: what arrived is kept, and the caller learns
        // that nothing more will.
        assert!(!linger(&mut rx, &mut fresh).await);
        assert_eq!(fresh.len(), 2);
    }
}
