//! The adaptive per-webhook in-flight cap (pure; `inflight` applies it).
//!
//! Each webhook starts at the base cap (`POSTBOX_ENDPOINT_CONCURRENCY`). Every
//! fast answer raises its cap by one (additive increase); every slow answer,
//! timeout, connection failure, 429 or 5xx halves it (multiplicative
//! decrease), never below the base. The cap never exceeds `concurrency -
//! base` (and never falls below the base), and `inflight` lets a webhook
//! past its base take only free slots beyond the last `base` ones: growth
//! never takes the slots that a webhook with nothing in flight needs.
//!
//! Why this keeps endpoints isolated (docs/ARCHITECTURE.md, "Endpoint
//! isolation"): a slow or dead endpoint never answers fast, so it never
//! grows past the base, exactly as with a fixed cap. An endpoint that turns
//! slow while grown holds at most `concurrency - base` slots until its
//! requests time out; the first slow answers halve its cap back to the base,
//! and it gets no new claim until it is below its cap. Growth past the base
//! never takes the last `base` free slots, so a webhook with nothing in
//! flight finds its base share free unless other webhooks hold theirs.

use std::time::Duration;

use super::retry::Attempt;

/// An answer slower than this counts as slow: the endpoint is busy, so its
/// cap shrinks. Far above a healthy endpoint's answer (a few ms), far below
/// any request timeout one would set.
pub(super) const FAST_ANSWER: Duration = Duration::from_millis(250);

/// How an attempt's endpoint answered, as the cap sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// A 2xx-4xx answer (other than 429) within `FAST_ANSWER`.
    Fast,
    /// A slow answer, a timeout or connection failure, a 429 or a 5xx.
    Slow,
    /// No request was made (webhook disabled, URL refused): says nothing.
    NotSent,
}

impl Answer {
    /// Classifies `attempt`; `sent` says whether a request was made.
    pub(super) fn of(attempt: &Attempt, sent: bool) -> Answer {
        if !sent {
            return Answer::NotSent;
        }
        let fast =
            u64::try_from(attempt.duration_ms).unwrap_or(0) <= FAST_ANSWER.as_millis() as u64;
        match attempt.status {
            Some(s) if fast && (200..500).contains(&s) && s != 429 => Answer::Fast,
            _ => Answer::Slow,
        }
    }
}

/// The bounds of the rule: the base cap and the largest cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CapRule {
    pub(super) base: usize,
    pub(super) max: usize,
}

impl CapRule {
    /// The rule for `base` (`endpoint_concurrency`) within `concurrency`
    /// slots: a webhook may grow up to `concurrency - base`, never below
    /// `base` (so a base of half the slots or more never grows).
    pub(super) fn new(base: usize, concurrency: usize) -> CapRule {
        let base = base.max(1);
        CapRule {
            base,
            max: concurrency.saturating_sub(base).max(base),
        }
    }

    /// The cap after an answer, from `cap`.
    pub(super) fn next(&self, cap: usize, answer: Answer) -> usize {
        match answer {
            Answer::Fast => (cap + 1).min(self.max),
            Answer::Slow => (cap / 2).max(self.base),
            Answer::NotSent => cap,
        }
        .clamp(self.base, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, ms: i32) -> Attempt {
        Attempt {
            status: Some(status),
            duration_ms: ms,
            ..Attempt::default()
        }
    }

    #[test]
    fn only_quick_answers_that_ask_for_no_pause_are_fast() {
        assert_eq!(Answer::of(&answered(200, 3), true), Answer::Fast);
        assert_eq!(Answer::of(&answered(404, 250), true), Answer::Fast);
        assert_eq!(Answer::of(&answered(200, 251), true), Answer::Slow);
        assert_eq!(Answer::of(&answered(429, 1), true), Answer::Slow);
        assert_eq!(Answer::of(&answered(503, 1), true), Answer::Slow);
        let timeout = Attempt {
            error: Some("timed out".into()),
            duration_ms: 5000,
            ..Attempt::default()
        };
        assert_eq!(Answer::of(&timeout, true), Answer::Slow);
        let refused = Attempt {
            error: Some("connection refused".into()),
            ..Attempt::default()
        };
        assert_eq!(Answer::of(&refused, true), Answer::Slow, "no answer at all");
        assert_eq!(Answer::of(&refused, false), Answer::NotSent);
    }

    #[test]
    fn fast_answers_grow_the_cap_by_one_up_to_the_slots_left_for_others() {
        let rule = CapRule::new(32, 128);
        assert_eq!(rule.max, 96, "32 slots stay for the other endpoints");
        let mut cap = rule.base;
        for _ in 0..200 {
            cap = rule.next(cap, Answer::Fast);
        }
        assert_eq!(cap, 96);
        assert_eq!(rule.next(33, Answer::Fast), 34, "additive");
    }

    #[test]
    fn slow_answers_halve_the_cap_down_to_the_base() {
        let rule = CapRule::new(32, 128);
        assert_eq!(rule.next(96, Answer::Slow), 48);
        assert_eq!(rule.next(48, Answer::Slow), 32);
        assert_eq!(rule.next(40, Answer::Slow), 32, "never below the base");
        assert_eq!(rule.next(32, Answer::Slow), 32);
        assert_eq!(rule.next(50, Answer::NotSent), 50);
    }

    #[test]
    fn a_base_of_half_the_slots_or_more_never_grows() {
        for (base, slots) in [(64, 128), (128, 128), (200, 128), (1, 1)] {
            let rule = CapRule::new(base, slots);
            assert_eq!(rule.next(base, Answer::Fast), base, "{base} of {slots}");
        }
        assert_eq!(CapRule::new(0, 8).base, 1, "a base of 0 means 1");
    }
}
