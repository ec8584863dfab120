//! The producer's book of requests in flight, by webhook: the per-endpoint
//! cap that every claim respects, adapted to each endpoint's answers
//! (`cap`). Shared by the producer and its executor tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

use super::cap::{Answer, CapRule};
use super::claim::Busy;
use crate::store::ClaimedDelivery;

pub(super) struct InFlight {
    /// How each webhook's cap moves with its answers.
    rule: CapRule,
    book: Mutex<Book>,
    /// A webhook that was at its cap (or past its base) is below it again:
    /// its queued work may be claimed again.
    cap_freed: AtomicBool,
}

#[derive(Default)]
struct Book {
    per_webhook: HashMap<Uuid, Flight>,
}

/// One webhook with requests in flight, or with a cap above the base (kept
/// between bursts, so that a fast endpoint does not start over at each
/// burst). A webhook with neither is forgotten.
struct Flight {
    in_flight: usize,
    cap: usize,
}

impl InFlight {
    pub(super) fn new(rule: CapRule) -> InFlight {
        InFlight {
            rule,
            book: Mutex::new(Book::default()),
            cap_freed: AtomicBool::new(false),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("in-flight lock")
    }

    pub(super) fn track(&self, d: &ClaimedDelivery) {
        let mut b = self.book();
        let base = self.rule.base;
        b.per_webhook
            .entry(d.webhook_id)
            .or_insert(Flight {
                in_flight: 0,
                cap: base,
            })
            .in_flight += 1;
    }

    /// `d`'s request is over and its endpoint answered as `answer`: the
    /// webhook's cap moves (`CapRule::next`) and its slot is free.
    pub(super) fn untrack(&self, d: &ClaimedDelivery, answer: Answer) {
        let mut b = self.book();
        if let Some(f) = b.per_webhook.get_mut(&d.webhook_id) {
            // At its base or past it: its cap, or past the base the
            // free-slot reserve (`busy`), may have stopped its claims.
            let was_held = f.in_flight >= self.rule.base;
            f.cap = self.rule.next(f.cap, answer);
            f.in_flight -= 1;
            if was_held && f.in_flight < f.cap {
                self.cap_freed.store(true, Ordering::Relaxed);
            }
            if f.in_flight == 0 && f.cap == self.rule.base {
                b.per_webhook.remove(&d.webhook_id);
            }
        }
    }

    /// Webhooks with requests in flight or a grown cap, and how many more
    /// each may take while `free` slots are free (any other webhook may take
    /// the base cap). Up to the base, a webhook's room is its cap's; past
    /// the base it grows only into free slots beyond the last `base`, so
    /// growth never takes the slots a webhook with nothing in flight needs.
    pub(super) fn busy(&self, free: usize) -> Busy {
        let b = self.book();
        let base = self.rule.base as i64;
        let beyond_reserve = free as i64 - base;
        let (webhooks, room) = b
            .per_webhook
            .iter()
            .map(|(id, f)| {
                let n = f.in_flight as i64;
                (*id, (base - n).max((f.cap as i64 - n).min(beyond_reserve)))
            })
            .unzip();
        Busy { webhooks, room }
    }

    /// Whether a webhook dropped below its cap since the last call.
    pub(super) fn take_cap_freed(&self) -> bool {
        self.cap_freed.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(webhook: u128, delivery: u128) -> ClaimedDelivery {
        ClaimedDelivery {
            id: Uuid::from_u128(delivery),
            webhook_id: Uuid::from_u128(webhook),
            ..ClaimedDelivery::sample()
        }
    }

    fn fixed(cap: usize) -> InFlight {
        InFlight::new(CapRule::new(cap, cap))
    }

    fn room_of(f: &InFlight, webhook: u128) -> Option<i64> {
        room_with(f, webhook, 100)
    }

    fn room_with(f: &InFlight, webhook: u128, free: usize) -> Option<i64> {
        let busy = f.busy(free);
        let i = busy
            .webhooks
            .iter()
            .position(|w| *w == Uuid::from_u128(webhook))?;
        Some(busy.room[i])
    }

    #[test]
    fn busy_webhooks_report_the_room_left_under_the_cap() {
        let f = fixed(2);
        f.track(&claim(1, 10));
        f.track(&claim(1, 11));
        f.track(&claim(2, 20));
        let busy = f.busy(100);
        let mut pairs: Vec<(Uuid, i64)> = busy.webhooks.into_iter().zip(busy.room).collect();
        pairs.sort();
        assert_eq!(pairs, [(Uuid::from_u128(1), 0), (Uuid::from_u128(2), 1)]);
    }

    #[test]
    fn only_a_webhook_leaving_its_cap_frees_claims() {
        let f = fixed(2);
        f.track(&claim(1, 10));
        f.track(&claim(2, 20));
        f.track(&claim(2, 21));
        f.untrack(&claim(1, 10), Answer::Fast);
        assert!(!f.take_cap_freed(), "webhook 1 was below its cap");
        f.untrack(&claim(2, 20), Answer::Fast);
        assert!(f.take_cap_freed());
        assert!(!f.take_cap_freed(), "taken once");
        f.untrack(&claim(2, 21), Answer::Fast);
        assert!(f.busy(100).webhooks.is_empty());
    }

    #[test]
    fn answers_move_the_room_of_their_webhook_only() {
        // Base 2 of 8 slots: a webhook may grow to 6.
        let f = InFlight::new(CapRule::new(2, 8));
        f.track(&claim(1, 10));
        f.track(&claim(1, 11));
        f.track(&claim(2, 20));
        f.untrack(&claim(1, 10), Answer::Fast);
        assert!(f.take_cap_freed(), "webhook 1 was at its cap");
        assert_eq!(room_of(&f, 1), Some(2), "cap 3, one in flight");
        assert_eq!(room_of(&f, 2), Some(1), "webhook 2 is untouched");
        for d in 12..16 {
            f.track(&claim(1, d));
        }
        f.untrack(&claim(1, 12), Answer::Slow);
        assert_eq!(room_of(&f, 1), Some(-2), "halved to the base, 4 still out");
        assert!(!f.take_cap_freed(), "still over its cap");
        for d in [11, 13, 14, 15] {
            f.untrack(&claim(1, d), Answer::Fast);
        }
        assert_eq!(room_of(&f, 1), Some(6), "cap 6, nothing in flight: kept");
        f.track(&claim(1, 16));
        f.untrack(&claim(1, 16), Answer::Slow);
        assert_eq!(room_of(&f, 1), Some(3));
        f.track(&claim(1, 17));
        f.untrack(&claim(1, 17), Answer::Slow);
        assert_eq!(room_of(&f, 1), None, "back at the base, idle: forgotten");
    }

    #[test]
    fn growth_past_the_base_never_takes_the_last_base_free_slots() {
        // Base 2 of 8 slots.
        let f = InFlight::new(CapRule::new(2, 8));
        f.track(&claim(1, 10));
        f.untrack(&claim(1, 10), Answer::Fast);
        f.track(&claim(1, 11));
        f.untrack(&claim(1, 11), Answer::Fast);
        assert_eq!(room_with(&f, 1, 8), Some(4), "cap 4, all slots free");
        assert_eq!(room_with(&f, 1, 5), Some(3), "5 free: 2 stay for others");
        assert_eq!(
            room_with(&f, 1, 2),
            Some(2),
            "up to the base it is always room"
        );
        f.track(&claim(1, 12));
        f.track(&claim(1, 13));
        f.track(&claim(1, 14));
        assert_eq!(room_with(&f, 1, 3), Some(1), "3 in flight, cap 4, 3 free");
        assert_eq!(
            room_with(&f, 1, 2),
            Some(0),
            "the last 2 free slots are kept"
        );
    }

    #[test]
    fn a_webhook_past_its_base_frees_claims_even_below_its_cap() {
        // Base 2 of 8 slots; webhook 1 grown to cap 4 with 3 in flight: the
        // reserve, not its cap, held it back.
        let f = InFlight::new(CapRule::new(2, 8));
        for d in [10, 11] {
            f.track(&claim(1, d));
            f.untrack(&claim(1, d), Answer::Fast);
        }
        f.take_cap_freed();
        for d in [12, 13, 14] {
            f.track(&claim(1, d));
        }
        f.untrack(&claim(1, 12), Answer::Fast);
        assert!(f.take_cap_freed());
        f.track(&claim(2, 20));
        f.untrack(&claim(2, 20), Answer::Fast);
        assert!(!f.take_cap_freed(), "webhook 2 was below its base");
    }
}
