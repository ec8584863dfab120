//! The producer's book of requests in flight, by webhook: the per-endpoint
//! cap that every claim respects. Shared by the producer and its executor tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

use super::claim::Busy;
use crate::store::ClaimedDelivery;

pub(super) struct InFlight {
    /// Deliveries one webhook may have in flight at once.
    cap: usize,
    book: Mutex<Book>,
    /// A webhook that was at its cap is below it again: its queued work may
    /// be claimed again.
    cap_freed: AtomicBool,
}

#[derive(Default)]
struct Book {
    per_webhook: HashMap<Uuid, usize>,
}

impl InFlight {
    pub(super) fn new(cap: usize) -> InFlight {
        InFlight {
            cap,
            book: Mutex::new(Book::default()),
            cap_freed: AtomicBool::new(false),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("in-flight lock")
    }

    pub(super) fn track(&self, d: &ClaimedDelivery) {
        let mut b = self.book();
        *b.per_webhook.entry(d.webhook_id).or_default() += 1;
    }

    pub(super) fn untrack(&self, d: &ClaimedDelivery) {
        let mut b = self.book();
        if let Some(n) = b.per_webhook.get_mut(&d.webhook_id) {
            if *n == self.cap {
                self.cap_freed.store(true, Ordering::Relaxed);
            }
            *n -= 1;
            if *n == 0 {
                b.per_webhook.remove(&d.webhook_id);
            }
        }
    }

    /// Webhooks with requests in flight, and how many more each may take.
    pub(super) fn busy(&self) -> Busy {
        let b = self.book();
        let cap = self.cap as i64;
        let (webhooks, room) = b
            .per_webhook
            .iter()
            .map(|(id, n)| (*id, cap - *n as i64))
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

    #[test]
    fn busy_webhooks_report_the_room_left_under_the_cap() {
        let f = InFlight::new(2);
        f.track(&claim(1, 10));
        f.track(&claim(1, 11));
        f.track(&claim(2, 20));
        let busy = f.busy();
        let mut pairs: Vec<(Uuid, i64)> = busy.webhooks.into_iter().zip(busy.room).collect();
        pairs.sort();
        assert_eq!(pairs, [(Uuid::from_u128(1), 0), (Uuid::from_u128(2), 1)]);
    }

    #[test]
    fn only_a_webhook_leaving_its_cap_frees_claims() {
        let f = InFlight::new(2);
        f.track(&claim(1, 10));
        f.track(&claim(2, 20));
        f.track(&claim(2, 21));
        f.untrack(&claim(1, 10));
        assert!(!f.take_cap_freed(), "webhook 1 was below its cap");
        f.untrack(&claim(2, 20));
        assert!(f.take_cap_freed());
        assert!(!f.take_cap_freed(), "taken once");
        f.untrack(&claim(2, 21));
        assert!(f.busy().webhooks.is_empty());
    }
}
