//! The wake-up protocol's bookkeeping, and the loop's timing constants.
//!
//! Producers NOTIFY only while `queue_state.dispatcher_waiting` is true (see
//! the trigger in migrations/V1). A dispatcher may sleep without losing a
//! wake-up only once a barrier (no producer holding the shared advisory lock)
//! cleared after it committed the flag as true: `IdleState::safe`.

use std::time::Duration;

/// How often each dispatcher requeues deliveries whose lease expired.
pub(super) const RESCUE_EVERY: Duration = Duration::from_secs(5);
/// All slots busy this long: the dispatcher counts as stalled (see `Wait::Slot`).
pub(super) const STALLED_AFTER: Duration = Duration::from_millis(100);
/// First wait when the wake-up barrier is taken by an open producer transaction.
pub(super) const RECHECK_FIRST: Duration = Duration::from_millis(10);

/// The wake-up protocol's state (see migrations/V1: events_before_insert).
#[derive(Default)]
pub(super) struct IdleState {
    /// What this dispatcher last wrote to queue_state.dispatcher_waiting.
    pub(super) flag: Option<bool>,
    /// A barrier cleared while the flag was true: producers that read the
    /// old value have all committed. Valid until the flag changes.
    pub(super) safe: bool,
    /// The flag was true when the last statement started.
    flag_at_start: bool,
    /// One recheck after an unsafe idle pass was made.
    pub(super) rechecked: bool,
    /// The next wait while the barrier stays taken (doubles up to the poll).
    pub(super) recheck_delay: Duration,
    /// The last claim found nothing although work was due (webhooks at their
    /// cap, rows locked elsewhere): due times do not drive the next sleep.
    pub(super) due_unclaimable: bool,
}

impl IdleState {
    /// Forgets the flag and the barrier (another dispatcher may have changed
    /// the flag): the next idle pass says again that it waits.
    pub(super) fn reset(&mut self) {
        *self = IdleState {
            due_unclaimable: self.due_unclaimable,
            ..IdleState::default()
        };
    }

    pub(super) fn set_flag(&mut self, waiting: bool) {
        self.flag = Some(waiting);
        self.safe = false;
        self.flag_at_start = waiting;
    }

    /// Records the barrier result of a statement that just ran.
    pub(super) fn saw_barrier(&mut self, clear: bool) {
        if self.flag_at_start && clear {
            self.safe = true;
        }
        self.flag_at_start = self.flag == Some(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_barrier_counts_only_in_a_statement_that_started_after_the_flag() {
        let mut s = IdleState::default();
        s.saw_barrier(true);
        assert!(!s.safe, "the flag was never said");
        s.set_flag(true);
        s.saw_barrier(false);
        assert!(!s.safe, "a producer still held the lock");
        s.saw_barrier(true);
        assert!(s.safe);
        s.saw_barrier(false);
        assert!(s.safe, "once every old reader committed, it stays true");
    }

    #[test]
    fn clearing_the_flag_forgets_the_barrier() {
        let mut s = IdleState::default();
        s.set_flag(true);
        s.saw_barrier(true);
        s.set_flag(false);
        assert!(!s.safe);
        s.saw_barrier(true);
        assert!(!s.safe, "producers do not notify while the flag is false");
    }

    #[test]
    fn reset_keeps_only_the_unclaimable_mark() {
        let mut s = IdleState::default();
        s.set_flag(true);
        s.saw_barrier(true);
        s.due_unclaimable = true;
        s.rechecked = true;
        s.reset();
        assert_eq!(
            (s.flag, s.safe, s.rechecked, s.due_unclaimable),
            (None, false, false, true)
        );
    }
}
