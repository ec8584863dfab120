//! Between two passes: how a pass ended (`Pass`), what to wait for next
//! (`Wait`), and the loop state that decides it. `LoopState::next_wait` is
//! pure (the pass, the state and `now` in, a `Wait` out), so the loop's
//! timing is unit-tested without a database; `Producer::wait` carries the
//! `Wait` out.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[cfg(test)]
use super::claim::Rest;
use super::claim::Round;
use super::idle::{IdleState, RECHECK_FIRST, STALLED_AFTER};
use super::rate::RateLimiter;
use crate::config::DispatchConfig;
use crate::store::FanoutResult;

/// The first wait after a failed pass; it doubles up to `MAX_BACKOFF`.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Pass {
    /// The pass failed (the database is away): back off.
    Failed,
    /// Every slot is busy.
    Full,
    /// The per-dispatcher rate limit allows nothing now.
    RateLimited,
    /// A full batch came back, or due work is left: there is more.
    Backlog,
    /// Some work, less than a batch.
    #[default]
    Some,
    /// Nothing to do. `safe_before`: a wake-up barrier cleared before this
    /// pass's snapshot, so no producer can have missed the flag.
    Idle {
        safe_before: bool,
        next_due: Option<DateTime<Utc>>,
    },
}

/// What to do between two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Pass again at once, after writing the wake-up flag if given.
    Again { flag: Option<bool> },
    /// The wake-up barrier cleared during the pass: look once more.
    Recheck,
    /// Every slot is busy: wait for one. Still busy after `stalled_after`:
    /// say the dispatcher waits (when `say_waiting`), so peers get woken.
    Slot {
        stalled_after: Duration,
        say_waiting: bool,
    },
    /// The rate limit allows nothing before this.
    Sleep(Duration),
    /// Nothing to do: sleep until a NOTIFY, a freed slot, or `sleep`.
    /// `safe`: no producer can have missed the flag (a plain poll).
    Idle { sleep: Duration, safe: bool },
    /// The pass failed: wait this long (it doubles each time).
    Backoff(Duration),
}

/// The loop's state between passes; everything `next_wait` reads.
pub(super) struct LoopState {
    pub(super) limiter: RateLimiter,
    pub(super) idle: IdleState,
    /// Look for due deliveries (not only new events) in the next pass.
    pub(super) claim_wanted: bool,
    pub(super) last_claim: Instant,
    pub(super) last_rescue: Option<Instant>,
    pub(super) error_backoff: Duration,
    pub(super) poll_interval: Duration,
}

impl LoopState {
    pub(super) fn new(config: &DispatchConfig) -> LoopState {
        LoopState {
            limiter: RateLimiter::new(config.rate_limit),
            idle: IdleState::default(),
            claim_wanted: true,
            last_claim: Instant::now(),
            last_rescue: None,
            error_backoff: FIRST_BACKOFF,
            poll_interval: config.poll_interval,
        }
    }

    /// What to wait for after a pass that ended in `pass`, at `now`. Pure.
    pub(super) fn next_wait(&self, pass: &Pass, now: DateTime<Utc>) -> Wait {
        let flag = self.idle.flag;
        match *pass {
            Pass::Failed => Wait::Backoff(self.error_backoff),
            Pass::Full => Wait::Slot {
                stalled_after: STALLED_AFTER,
                say_waiting: flag != Some(true),
            },
            Pass::RateLimited => Wait::Sleep(self.limiter.until_next()),
            // Busy: producers need not pay for a NOTIFY.
            Pass::Backlog => Wait::Again {
                flag: (flag != Some(false)).then_some(false),
            },
            // Less than a batch: the next pass looks once more.
            Pass::Some => Wait::Again { flag: None },
            // Say we wait; the next statement checks that no producer missed
            // it, the one after looks for work once more.
            Pass::Idle { .. } if flag != Some(true) => Wait::Again { flag: Some(true) },
            Pass::Idle {
                safe_before: true,
                next_due,
            } => {
                let until_due = next_due
                    .filter(|_| !self.idle.due_unclaimable)
                    .map(|due| until(due, now).max(Duration::from_millis(1)))
                    .unwrap_or(self.poll_interval);
                Wait::Idle {
                    sleep: until_due.min(self.poll_interval),
                    safe: true,
                }
            }
            Pass::Idle { .. } if !self.idle.rechecked => Wait::Recheck,
            // A producer transaction is still open: look again soon, then
            // less and less often.
            Pass::Idle { .. } => Wait::Idle {
                sleep: self.idle.recheck_delay.max(RECHECK_FIRST),
                safe: false,
            },
        }
    }

    /// Decides, after the fan-out, whether the round claims due deliveries.
    /// `poked` (asked only when the fan-out queued nothing) says whether a
    /// wake-up or a freed cap asked for a claim.
    pub(super) fn wants_rest(
        &mut self,
        fan: &FanoutResult,
        poked: impl FnOnce() -> bool,
        now: DateTime<Utc>,
    ) -> bool {
        if fan.queued > 0 || poked() || self.last_claim.elapsed() >= self.poll_interval {
            self.idle.due_unclaimable = false;
            self.claim_wanted = true;
        }
        if fan.next_due.is_some_and(|due| due <= now) && !self.idle.due_unclaimable {
            self.claim_wanted = true;
        }
        self.claim_wanted
    }

    /// Books a finished round and names the pass's outcome.
    pub(super) fn claimed(&mut self, round: &Round, limit: usize, safe_before: bool) -> Pass {
        self.idle.saw_barrier(round.fan.barrier_clear);
        if let Some(rest) = round.rest {
            self.last_claim = Instant::now();
            // Due but nothing claimable (webhooks at their cap, rows locked
            // by another dispatcher): wait for a change. Not when the
            // earliest queued work is not due yet (a batch waiting for
            // maxWaitMs): the wait for it ends when it comes due.
            let only_later = round
                .now
                .zip(round.fan.next_due)
                .is_some_and(|(now, due)| due > now);
            self.idle.due_unclaimable = rest.claimed == 0 && !only_later;
            self.claim_wanted = rest.claimed == rest.room;
        }
        self.limiter.take(round.claimed);
        let fan = &round.fan;
        let idle = Pass::Idle {
            safe_before,
            next_due: fan.next_due,
        };
        // Partial events (a large owner's, fanned out in bounded steps)
        // continue at once, whatever the wake-up state.
        if fan.events as usize == limit || fan.partial > 0 || self.claim_wanted {
            Pass::Backlog
        } else if safe_before && self.idle.flag == Some(true) {
            // Less than a batch, so this pass took every event committed
            // before it; any later producer saw the flag and notified.
            idle
        } else if fan.events > 0 || round.claimed > 0 {
            Pass::Some
        } else {
            idle
        }
    }

    /// The wake-up protocol's part of an idle sleep: the next recheck delay
    /// doubles while the barrier stays taken; a safe sleep starts over.
    pub(super) fn begin_idle(&mut self, sleep: Duration, safe: bool) {
        self.idle.recheck_delay = if safe {
            RECHECK_FIRST
        } else {
            (sleep * 2).min(self.poll_interval)
        };
        self.idle.rechecked = false;
    }
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const POLL: Duration = Duration::from_secs(1);

    fn state() -> LoopState {
        LoopState::new(&DispatchConfig {
            poll_interval: POLL,
            ..DispatchConfig::default()
        })
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn idle(safe_before: bool, due_in_ms: Option<i64>) -> Pass {
        Pass::Idle {
            safe_before,
            next_due: due_in_ms.map(|ms| now() + chrono::Duration::milliseconds(ms)),
        }
    }

    /// A state whose wake-up flag is committed as true.
    fn waiting() -> LoopState {
        let mut s = state();
        s.idle.set_flag(true);
        s
    }

    fn round(events: i64, claimed: usize, rest: Option<Rest>) -> Round {
        Round {
            fan: FanoutResult {
                events,
                ..FanoutResult::default()
            },
            claimed,
            rest,
            now: None,
        }
    }

    #[test]
    fn a_failed_pass_backs_off() {
        assert_eq!(
            state().next_wait(&Pass::Failed, now()),
            Wait::Backoff(FIRST_BACKOFF)
        );
    }

    #[test]
    fn full_slots_wait_for_one_and_say_waiting_only_once() {
        let stalled = |s: &LoopState| match s.next_wait(&Pass::Full, now()) {
            Wait::Slot {
                stalled_after,
                say_waiting,
            } => {
                assert_eq!(stalled_after, STALLED_AFTER);
                say_waiting
            }
            other => panic!("{other:?}"),
        };
        assert!(stalled(&state()));
        assert!(!stalled(&waiting()), "the flag is already true");
    }

    #[test]
    fn a_backlog_clears_the_flag_once_then_passes_at_once() {
        let mut s = state();
        assert_eq!(
            s.next_wait(&Pass::Backlog, now()),
            Wait::Again { flag: Some(false) }
        );
        s.idle.set_flag(false);
        assert_eq!(
            s.next_wait(&Pass::Backlog, now()),
            Wait::Again { flag: None }
        );
        assert_eq!(s.next_wait(&Pass::Some, now()), Wait::Again { flag: None });
    }

    #[test]
    fn going_idle_first_says_waiting() {
        assert_eq!(
            state().next_wait(&idle(true, None), now()),
            Wait::Again { flag: Some(true) }
        );
    }

    #[test]
    fn a_safe_idle_sleeps_until_the_next_due_time_or_the_poll() {
        let s = waiting();
        let sleep = |pass: Pass| match s.next_wait(&pass, now()) {
            Wait::Idle { sleep, safe: true } => sleep,
            other => panic!("{other:?}"),
        };
        assert_eq!(sleep(idle(true, None)), POLL);
        assert_eq!(sleep(idle(true, Some(300))), Duration::from_millis(300));
        assert_eq!(sleep(idle(true, Some(60_000))), POLL, "at most a poll");
        assert_eq!(
            sleep(idle(true, Some(-5))),
            Duration::from_millis(1),
            "overdue: look again at once, without spinning"
        );
    }

    #[test]
    fn unclaimable_due_work_does_not_drive_the_sleep() {
        let mut s = waiting();
        s.idle.due_unclaimable = true;
        assert_eq!(
            s.next_wait(&idle(true, Some(300)), now()),
            Wait::Idle {
                sleep: POLL,
                safe: true
            }
        );
    }

    #[test]
    fn an_unsafe_idle_rechecks_then_backs_off_doubling_up_to_the_poll() {
        let mut s = waiting();
        let mut sleeps = Vec::new();
        for _ in 0..8 {
            match s.next_wait(&idle(false, None), now()) {
                Wait::Recheck => s.idle.rechecked = true,
                Wait::Idle { sleep, safe: false } => {
                    s.begin_idle(sleep, false);
                    sleeps.push(sleep.as_millis());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sleeps, [10, 20, 40, 80], "a recheck before each sleep");
        s.begin_idle(Duration::from_millis(800), false);
        assert_eq!(s.idle.recheck_delay, POLL);
        s.begin_idle(POLL, true);
        assert_eq!(
            s.idle.recheck_delay, RECHECK_FIRST,
            "a safe sleep starts over"
        );
    }

    #[test]
    fn the_rate_limit_sleeps_until_its_next_token() {
        let mut s = LoopState::new(&DispatchConfig {
            rate_limit: 10,
            ..DispatchConfig::default()
        });
        s.limiter.take(1);
        match s.next_wait(&Pass::RateLimited, now()) {
            Wait::Sleep(d) => assert!(d > Duration::ZERO && d <= Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rest_is_wanted_for_queued_poked_or_due_work() {
        let mut s = state();
        s.claim_wanted = false;
        let fan = FanoutResult::default();
        assert!(!s.wants_rest(&fan, || false, now()), "nothing asks for it");
        let mut asked = false;
        let queued = FanoutResult {
            queued: 1,
            ..FanoutResult::default()
        };
        assert!(s.wants_rest(
            &queued,
            || {
                asked = true;
                true
            },
            now()
        ));
        assert!(
            !asked,
            "a wake-up is not spent when the fan-out queued work"
        );
        s.claim_wanted = false;
        assert!(
            s.wants_rest(&fan, || true, now()),
            "a wake-up or a freed cap"
        );
        s.claim_wanted = false;
        let due = FanoutResult {
            next_due: Some(now()),
            ..FanoutResult::default()
        };
        assert!(s.wants_rest(&due, || false, now()));
        s.claim_wanted = false;
        s.idle.due_unclaimable = true;
        assert!(!s.wants_rest(&due, || false, now()), "due but unclaimable");
    }

    #[test]
    fn a_round_names_the_pass() {
        let mut s = waiting();
        s.claim_wanted = false;
        assert_eq!(
            s.claimed(&round(10, 10, None), 10, true),
            Pass::Backlog,
            "a full batch"
        );
        assert_eq!(s.claimed(&round(3, 3, None), 10, false), Pass::Some);
        assert_eq!(
            s.claimed(&round(3, 3, None), 10, true),
            idle(true, None),
            "a safe short batch took everything: no second look"
        );
        let full_rest = Some(Rest {
            room: 5,
            claimed: 5,
        });
        assert_eq!(s.claimed(&round(0, 5, full_rest), 5, true), Pass::Backlog);
        assert!(s.claim_wanted, "a full claim asks for another");
        let empty_rest = Some(Rest {
            room: 5,
            claimed: 0,
        });
        assert_eq!(
            s.claimed(&round(0, 0, empty_rest), 5, true),
            idle(true, None)
        );
        assert!(s.idle.due_unclaimable);
    }

    #[test]
    fn a_claim_that_finds_only_later_work_sleeps_until_it_is_due() {
        let mut s = state();
        s.idle.flag = Some(true);
        let due = now() + chrono::Duration::milliseconds(300);
        let mut r = round(
            0,
            0,
            Some(Rest {
                room: 5,
                claimed: 0,
            }),
        );
        r.fan.next_due = Some(due);
        r.now = Some(now());
        let pass = s.claimed(&r, 5, true);
        assert!(!s.idle.due_unclaimable, "nothing due was left unclaimed");
        assert_eq!(
            s.next_wait(&pass, now()),
            Wait::Idle {
                sleep: Duration::from_millis(300),
                safe: true
            }
        );
    }
}
