//! The adaptive per-webhook in-flight cap, through the real dispatcher: a
//! fast endpoint grows past `endpoint_concurrency` (up to the slots that
//! leave the base for the others, never into the last `base` free slots), a
//! slow one stays at the base, and one that turns slow is cut back. Each `run_once` is one pass: it claims within
//! the caps, then waits for every attempt, so the claims per pass are exact.

use std::sync::Arc;
use std::time::Duration;

use postbox::config::DispatchConfig;
use postbox::dispatch::Dispatcher;
use serde_json::json;

use crate::support::*;

/// Base cap 2 within 8 slots: a webhook may grow to 6.
fn config() -> DispatchConfig {
    DispatchConfig {
        concurrency: 8,
        endpoint_concurrency: 2,
        ..dispatch_config()
    }
}

/// Answers 200 after `delay`: past the cap's 250 ms "fast" bound, an answer
/// counts as slow.
async fn answering_after(delay: Duration) -> Receiver {
    Receiver::start(Arc::new(move |_| Answer {
        delay,
        ..Answer::status(200)
    }))
    .await
}

/// `run_once` `passes` times; the attempts each made.
async fn passes(d: &Dispatcher, passes: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for _ in 0..passes {
        out.push(d.run_once().await.unwrap().attempts);
    }
    out
}

#[tokio::test]
async fn a_fast_endpoint_grows_past_the_base_cap_up_to_the_slots_left_for_others() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("fast", rx.url(), &["*"]).insert(&c).await;
    for i in 0..20 {
        publish(&c, "user.created", json!({"i": i}), "fast").await;
    }
    let d = Dispatcher::new(db.store(), config(), system_clock()).unwrap();
    // Each fast answer adds one: 2, then 4, then 6 (8 slots less the base).
    assert_eq!(passes(&d, 5).await, [2, 4, 6, 6, 2]);
    assert_eq!(rx.count(), 20);
}

#[tokio::test]
async fn a_slow_endpoint_stays_at_the_base_and_leaves_the_other_slots_to_a_fast_one() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let slow = answering_after(Duration::from_millis(400)).await;
    let fast = Receiver::ok().await;
    NewWebhook::new("slow", slow.url(), &["*"]).insert(&c).await;
    NewWebhook::new("fast", fast.url(), &["*"]).insert(&c).await;
    for i in 0..12 {
        publish(&c, "user.created", json!({"i": i}), "slow").await;
        publish(&c, "user.created", json!({"i": i}), "fast").await;
    }
    let d = Dispatcher::new(db.store(), config(), system_clock()).unwrap();
    let mut seen = (0, 0);
    let mut per_pass = Vec::new();
    for _ in 0..4 {
        d.run_once().await.unwrap();
        let now = (slow.count(), fast.count());
        per_pass.push((now.0 - seen.0, now.1 - seen.1));
        seen = now;
    }
    // The slow endpoint never has more than the base in flight, whatever
    // its backlog; the fast one grows into the slots it leaves, but never
    // into the last 2 free ones (each pass fans out 8 events: 4 of each).
    assert_eq!(per_pass, [(2, 2), (2, 4), (2, 4), (2, 2)]);
}

#[tokio::test]
async fn an_endpoint_that_turns_slow_is_cut_back_to_the_base() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Six fast answers, then slow ones.
    let rx = Receiver::start(Arc::new(|n| Answer {
        delay: if n < 6 {
            Duration::ZERO
        } else {
            Duration::from_millis(400)
        },
        ..Answer::status(200)
    }))
    .await;
    NewWebhook::new("turns", rx.url(), &["*"]).insert(&c).await;
    for i in 0..20 {
        publish(&c, "user.created", json!({"i": i}), "turns").await;
    }
    let d = Dispatcher::new(db.store(), config(), system_clock()).unwrap();
    // 2 + 4 fast answers grow it to 6; six slow ones halve it to the base.
    assert_eq!(passes(&d, 4).await, [2, 4, 6, 2]);
}
