//! Test signals: counters the producer and the completer bump on "went idle",
//! "claimed N", "completed N", "skipped N" and "a write failed", so that tests wait for a state of the
//! dispatcher instead of sleeping or polling the database. A dispatcher built
//! without them pays one `Option` check per event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// What a dispatcher has signalled since its signals were made (totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signalled {
    /// Times it went to sleep idle with the wake-up flag confirmed: from then
    /// on only a NOTIFY, a freed slot or the poll timer wakes it.
    pub idle: u64,
    /// Deliveries claimed, by the fan-out or the claim of due deliveries.
    pub claimed: u64,
    /// Outcomes the completer recorded (or found superseded).
    pub completed: u64,
    /// Outcomes the completer could not write yet because another
    /// transaction held their row locked (each try counts).
    pub skipped: u64,
    /// Writes of outcomes that failed (the database away).
    pub write_failures: u64,
}

/// A handle on test signals. Clones share the counters, so one handle may
/// serve several dispatchers: their counts add up.
#[derive(Debug, Clone)]
pub struct TestSignals {
    tx: Arc<watch::Sender<Signalled>>,
}

/// No signal met the condition in time; `seen` is what had been signalled.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for a dispatcher signal; signalled so far: {seen:?}")]
pub struct SignalTimeout {
    pub timeout: Duration,
    pub seen: Signalled,
}

impl Default for TestSignals {
    fn default() -> Self {
        TestSignals::new()
    }
}

impl TestSignals {
    pub fn new() -> TestSignals {
        TestSignals {
            tx: Arc::new(watch::Sender::new(Signalled::default())),
        }
    }

    /// The totals signalled so far.
    pub fn seen(&self) -> Signalled {
        *self.tx.borrow()
    }

    /// Waits until `done` holds for the totals (checked at once, then on
    /// every signal); fails after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Signalled) -> bool,
    ) -> Result<Signalled, SignalTimeout> {
        let mut rx = self.tx.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|s| done(s)).await.map(|seen| *seen)
        })
        .await;
        match waited {
            Ok(Ok(seen)) => Ok(seen),
            // The sender lives in `self`, so only the timeout can end the wait.
            _ => Err(SignalTimeout {
                timeout,
                seen: self.seen(),
            }),
        }
    }

    pub(super) fn went_idle(&self) {
        self.tx.send_modify(|s| s.idle += 1);
    }

    pub(super) fn claimed(&self, n: usize) {
        self.tx.send_modify(|s| s.claimed += n as u64);
    }

    pub(super) fn completed(&self, n: usize) {
        self.tx.send_modify(|s| s.completed += n as u64);
    }

    pub(super) fn skipped(&self, n: usize) {
        if n > 0 {
            self.tx.send_modify(|s| s.skipped += n as u64);
        }
    }

    pub(super) fn write_failed(&self) {
        self.tx.send_modify(|s| s.write_failures += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_on_the_signal_that_meets_it() {
        let signals = TestSignals::new();
        let waiter = {
            let s = signals.clone();
            tokio::spawn(async move {
                s.wait_for(Duration::from_secs(5), |seen| seen.claimed >= 3)
                    .await
            })
        };
        signals.claimed(2);
        signals.went_idle();
        signals.claimed(1);
        let seen = waiter.await.unwrap().unwrap();
        assert_eq!(seen.claimed, 3);
    }

    #[tokio::test]
    async fn a_wait_that_is_never_met_times_out_with_the_totals() {
        let signals = TestSignals::new();
        signals.completed(4);
        let err = signals
            .wait_for(Duration::from_millis(20), |seen| seen.completed >= 5)
            .await
            .unwrap_err();
        assert_eq!(err.seen.completed, 4);
    }
}
