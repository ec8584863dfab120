//! Endpoints in trouble (SPEC 7.1), end to end against real Postgres and a
//! recording receiver: pause holds and resume releases in due order, the
//! circuit breaker opens on a dead endpoint, probes alone and closes on
//! recovery, Retry-After and AIMD, limits across three dispatchers, the
//! webhook's fields and their validation. Recover, replay, attempts and
//! notifications: `trouble_recovery.rs`.
//! Each `run_once` is one pass that waits for its attempts, so the
//! attempts per pass are exact; time moves with a `ShiftedClock`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use postbox::clock::{SharedClock, ShiftedClock};
use postbox::config::DispatchConfig;
use postbox::dispatch::Dispatcher;
use serde_json::json;
use uuid::Uuid;

use crate::api_support::Api;
use crate::support::*;

/// One request at a time: the order of arrival is the order of claims.
pub(crate) fn one_at_a_time() -> DispatchConfig {
    DispatchConfig {
        concurrency: 1,
        endpoint_concurrency: 1,
        ..dispatch_config()
    }
}

pub(crate) fn shifted() -> (ShiftedClock, SharedClock) {
    let clock = ShiftedClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}

pub(crate) async fn health(c: &tokio_postgres::Client, hook: Uuid) -> (String, i32, bool) {
    let r = c
        .query_one(
            "SELECT breaker_state, consecutive_failures, paused FROM postbox.webhook_health WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// Deliveries in `status`.
pub(crate) async fn with_status(c: &tokio_postgres::Client, status: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM postbox.deliveries WHERE status = '{status}'");
    count(c, &sql).await
}

/// A receiver answering 500 while the flag is true (it starts true), 200 after.
pub(crate) async fn switchable() -> (Arc<AtomicBool>, Receiver) {
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    let rx = Receiver::start(Arc::new(move |_| {
        Answer::status(if flag.load(Ordering::SeqCst) {
            500
        } else {
            200
        })
    }))
    .await;
    (down, rx)
}

pub(crate) async fn notifications(c: &tokio_postgres::Client, kind: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM postbox.notifications WHERE kind = $1",
        &[&kind],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn pause_holds_deliveries_with_their_budget_and_resume_sends_them_in_due_order() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let hook = api
        .create(
            "owner_p",
            json!({"name": "p", "url": rx.url(), "events": ["*"]}),
        )
        .await;
    assert_eq!(hook["paused"], false);
    assert_eq!(hook["breaker"]["state"], "closed");
    let id = hook["id"].as_str().unwrap().to_string();
    let token = api.token("owner_p");
    let (status, paused) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/pause"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["data"]["paused"], true);
    // Another owner cannot pause it.
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/pause"),
            Some(&api.token("other")),
            None,
        )
        .await;
    assert_eq!(status, 404);

    for (path, status) in [
        (format!("/api/webhooks/{}/pause", Uuid::new_v4()), 404),
        ("/api/webhooks/not-a-uuid/resume".to_string(), 400),
    ] {
        let (got, answer) = api.call("POST", &path, Some(&token), None).await;
        assert_eq!(got, status, "{path} -> {answer}");
    }
    let c = api.db.client().await;
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(publish(&c, "project.created", json!({"i": i}), "owner_p").await);
    }
    let d = Dispatcher::new(api.db.store(), one_at_a_time(), system_clock()).unwrap();
    for _ in 0..3 {
        assert_eq!(d.run_once().await.unwrap().attempts, 0, "held while paused");
    }
    assert_eq!(rx.count(), 0);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE attempts = 0 AND status = 'pending'"
        )
        .await,
        3,
        "queued, no attempt spent"
    );
    assert!(health(&c, Uuid::parse_str(&id).unwrap()).await.2);

    let (status, resumed) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/resume"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["data"]["paused"], false);
    for _ in 0..3 {
        assert_eq!(d.run_once().await.unwrap().attempts, 1);
    }
    let order: Vec<String> = rx
        .all()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    let expected: Vec<String> = events.iter().map(Uuid::to_string).collect();
    assert_eq!(order, expected, "sent in order of due time");
}

#[tokio::test]
async fn a_dead_endpoint_opens_the_breaker_probes_one_at_a_time_and_closes_on_recovery() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (down, rx) = switchable().await;
    let (hook, _) = NewWebhook {
        max_retries: 10,
        ..NewWebhook::new("owner_b", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    for i in 0..12 {
        publish(&c, "project.created", json!({"i": i}), "owner_b").await;
    }
    let (clock, shared) = shifted();
    let config = DispatchConfig {
        concurrency: 16,
        endpoint_concurrency: 16,
        ..dispatch_config()
    };
    let d = Dispatcher::new(db.store(), config, shared).unwrap();
    // The first pass sends all 12: 12 failures in a row open the breaker.
    assert_eq!(d.run_once().await.unwrap().attempts, 12);
    let (state, failures, _) = health(&c, hook).await;
    assert_eq!((state.as_str(), failures), ("open", 12));
    assert_eq!(notifications(&c, "webhook.breaker_opened").await, 1);

    // Every retry is due, but an open breaker sends one probe at a time.
    clock.advance(chrono::Duration::seconds(120));
    assert_eq!(d.run_once().await.unwrap().attempts, 1, "one probe");
    assert_eq!(health(&c, hook).await.0, "open", "the probe failed");
    assert_eq!(
        d.run_once().await.unwrap().attempts,
        0,
        "the next probe waits longer (60 s)"
    );
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(d.run_once().await.unwrap().attempts, 1, "second probe");
    assert_eq!(rx.count(), 14);
    // Held deliveries spent no budget: 10 of them made one attempt only.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE attempts = 1"
        )
        .await,
        10
    );

    // The endpoint recovers: the next probe closes the breaker and the
    // backlog drains.
    down.store(false, Ordering::SeqCst);
    clock.advance(chrono::Duration::seconds(200));
    assert_eq!(d.run_once().await.unwrap().attempts, 1, "third probe");
    assert_eq!(health(&c, hook).await, ("closed".to_string(), 0, false));
    assert_eq!(notifications(&c, "webhook.breaker_closed").await, 1);
    assert_eq!(
        d.run_once().await.unwrap().attempts,
        11,
        "the backlog drains"
    );
    assert_eq!(with_status(&c, "success").await, 12);
}

#[tokio::test]
async fn protection_fields_round_trip_and_bad_values_get_a_400_naming_the_field() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let hook = api
        .create(
            "owner_f",
            json!({"name": "f", "url": rx.url(), "events": ["*"],
                   "rateLimit": 50, "maxInFlight": 4, "retrySchedule": [5, 300, 1800]}),
        )
        .await;
    assert_eq!(hook["rateLimit"], 50);
    assert_eq!(hook["maxInFlight"], 4);
    assert_eq!(hook["retrySchedule"], json!([5, 300, 1800]));
    let id = hook["id"].as_str().unwrap();
    let token = api.token("owner_f");
    let (status, updated) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&token),
            Some(json!({"rateLimit": null, "retrySchedule": null, "paused": true})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["rateLimit"], serde_json::Value::Null);
    assert_eq!(updated["data"]["retrySchedule"], serde_json::Value::Null);
    assert_eq!(updated["data"]["maxInFlight"], 4, "absent: kept");
    assert_eq!(updated["data"]["paused"], true);

    for (body, field) in [
        (json!({"rateLimit": 0}), "rateLimit"),
        (json!({"rateLimit": 10001}), "rateLimit"),
        (json!({"rateLimit": "5"}), "rateLimit"),
        (json!({"maxInFlight": 0}), "maxInFlight"),
        (json!({"retrySchedule": []}), "retrySchedule"),
        (json!({"retrySchedule": [0]}), "retrySchedule[0]"),
        (json!({"retrySchedule": [5, 604801]}), "retrySchedule[1]"),
        (json!({"retrySchedule": vec![1; 21]}), "retrySchedule"),
        (json!({"retrySchedule": "5,10"}), "retrySchedule"),
        (json!({"paused": "yes"}), "paused"),
    ] {
        let (status, answer) = api
            .call(
                "PUT",
                &format!("/api/webhooks/{id}"),
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"].to_string().contains(field),
            "{body} -> {answer}"
        );
    }
    // The same rules hold for SQL users.
    let c = api.db.client().await;
    for bad in [
        "UPDATE postbox.webhooks SET retry_schedule = '{}'",
        "UPDATE postbox.webhooks SET retry_schedule = '{5,NULL}'",
        "UPDATE postbox.webhooks SET retry_schedule = '{0}'",
        "UPDATE postbox.webhooks SET rate_limit = 0",
        "UPDATE postbox.webhooks SET max_in_flight = 0",
    ] {
        assert!(c.execute(bad, &[]).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_429_with_retry_after_holds_the_whole_webhook_until_then() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(|n| {
        if n == 0 {
            Answer {
                headers: vec![("retry-after".into(), "30".into())],
                ..Answer::status(429)
            }
        } else {
            Answer::status(200)
        }
    }))
    .await;
    let (hook, _) = NewWebhook::new("owner_t", rx.url(), &["*"])
        .insert(&c)
        .await;
    let (clock, shared) = shifted();
    let d = Dispatcher::new(db.store(), dispatch_config(), shared).unwrap();
    publish(&c, "project.created", json!({"i": 0}), "owner_t").await;
    assert_eq!(d.run_once().await.unwrap().attempts, 1, "answered 429");
    let held: bool = c
        .query_one(
            "SELECT throttled_until > now() + interval '25 seconds' FROM postbox.webhook_health WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held, "the Retry-After holds the webhook");
    // A 429 throttles; it is no failure for the breaker.
    assert_eq!(health(&c, hook).await, ("closed".to_string(), 0, false));

    publish(&c, "project.created", json!({"i": 1}), "owner_t").await;
    publish(&c, "project.created", json!({"i": 2}), "owner_t").await;
    assert_eq!(
        d.run_once().await.unwrap().attempts,
        0,
        "held by Retry-After"
    );
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(
        d.run_once().await.unwrap().attempts,
        2,
        "new events after it"
    );
    // The throttled delivery waits for its own retry (60 s, >= Retry-After).
    clock.advance(chrono::Duration::seconds(40));
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    assert_eq!(rx.count(), 4);
    assert_eq!(with_status(&c, "success").await, 3);
}

#[tokio::test]
async fn max_in_flight_holds_across_three_dispatchers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let delay = std::time::Duration::from_millis(300);
    let rx = Receiver::start(Arc::new(move |_| Answer {
        delay,
        ..Answer::status(200)
    }))
    .await;
    let (hook, _) = NewWebhook::new("owner_l", rx.url(), &["*"])
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET max_in_flight = 2 WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    let running: Vec<Running> = (0..3)
        .map(|_| spawn_dispatcher(db.store(), dispatch_config(), system_clock()))
        .collect();
    for i in 0..12 {
        publish(&c, "project.created", json!({"i": i}), "owner_l").await;
    }
    let got = rx.wait_for(12, std::time::Duration::from_secs(60)).await;
    for r in running {
        r.shutdown().await;
    }
    // Each request is in flight for at least `delay`, and the next claim for
    // the webhook waits for an outcome: no window shorter than `delay` may
    // hold more arrivals than the limit.
    let window = delay - std::time::Duration::from_millis(10);
    let at: Vec<std::time::Instant> = got.iter().map(|r| r.at).collect();
    for (i, a) in at.iter().enumerate() {
        let within = at[i..].iter().filter(|b| **b - *a < window).count();
        assert!(within <= 2, "{within} requests within {window:?}");
    }
    let in_flight: Option<i32> = c
        .query_one(
            "SELECT in_flight FROM postbox.webhook_health WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_flight, Some(0), "the counter returns to zero");
}

#[tokio::test]
async fn rate_limit_holds_across_three_dispatchers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = NewWebhook::new("owner_rl", rx.url(), &["*"])
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET rate_limit = 5 WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    for i in 0..20 {
        publish(&c, "project.created", json!({"i": i}), "owner_rl").await;
    }
    let running: Vec<Running> = (0..3)
        .map(|_| spawn_dispatcher(db.store(), dispatch_config(), system_clock()))
        .collect();
    let got = rx.wait_for(20, std::time::Duration::from_secs(60)).await;
    for r in running {
        r.shutdown().await;
    }
    // The bucket holds one second of requests (5) and refills at 5/s: no
    // second may see more than 10, whatever the number of dispatchers.
    let at: Vec<std::time::Instant> = got.iter().map(|r| r.at).collect();
    for (i, a) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .filter(|b| **b - *a < std::time::Duration::from_secs(1))
            .count();
        assert!(within <= 10, "{within} requests within one second");
    }
    let span = *at.last().unwrap() - at[0];
    assert!(
        span >= std::time::Duration::from_secs(2),
        "20 requests at 5/s with a burst of 5 take at least 3 s: {span:?}"
    );
}

fn claim_limits() -> postbox::store::ClaimLimits<'static> {
    postbox::store::ClaimLimits {
        limit: 16,
        busy_webhooks: &[],
        busy_room: &[],
        lease: std::time::Duration::from_secs(60),
        per_webhook: 16,
    }
}

#[tokio::test]
async fn a_lost_request_frees_its_in_flight_place_and_a_lost_probe_its_turn_after_the_lease() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = NewWebhook::new("owner_x", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET max_in_flight = 1 WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    for i in 0..3 {
        publish(&c, "project.created", json!({"i": i}), "owner_x").await;
    }
    let store = db.store();
    let now = chrono::Utc::now();
    // Fan-out leaves a limited webhook's rows to the claim.
    let fan = store
        .event_fanout_many(10, now, claim_limits())
        .await
        .unwrap();
    assert_eq!((fan.deliveries, fan.claimed.len()), (3, 0));
    // A dispatcher claims one (the limit) and dies without an outcome.
    let first = store.delivery_claim(now, claim_limits()).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store
        .delivery_claim(now, claim_limits())
        .await
        .unwrap()
        .is_empty());
    // After the lease, the rescue gives the place back.
    let later = now + chrono::Duration::seconds(120);
    assert_eq!(store.delivery_rescue_expired(later, 100).await.unwrap(), 1);
    let in_flight: i32 = c
        .query_one(
            "SELECT in_flight FROM postbox.webhook_state WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_flight, 0);
    assert_eq!(
        store
            .delivery_claim(later, claim_limits())
            .await
            .unwrap()
            .len(),
        1
    );

    // An open breaker: one probe; a probe lost with its dispatcher holds
    // the webhook only until the probe's lease has passed.
    c.execute(
        "UPDATE postbox.webhooks SET max_in_flight = NULL WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE postbox.webhook_state SET breaker_state = 'open', next_probe_at = $2 WHERE webhook_id = $1",
        &[&hook, &later],
    )
    .await
    .unwrap();
    let probe = store.delivery_claim(later, claim_limits()).await.unwrap();
    assert_eq!(probe.len(), 1, "one probe");
    assert_eq!(health(&c, hook).await.0, "half_open");
    assert!(store
        .delivery_claim(later, claim_limits())
        .await
        .unwrap()
        .is_empty());
    let after_lease = later + chrono::Duration::seconds(61);
    assert_eq!(
        store
            .delivery_claim(after_lease, claim_limits())
            .await
            .unwrap()
            .len(),
        1,
        "the lost probe's turn passed"
    );
}

#[tokio::test]
async fn a_429_halves_the_rate_in_force_and_successes_add_it_back() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(|n| Answer::status(if n == 0 { 429 } else { 200 }))).await;
    let (hook, _) = NewWebhook::new("owner_aimd", rx.url(), &["*"])
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET rate_limit = 50 WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    let rate = || async {
        c.query_one(
            "SELECT effective_rate FROM postbox.webhook_health WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap()
        .get::<_, Option<f64>>(0)
    };
    let d = Dispatcher::new(db.store(), one_at_a_time(), system_clock()).unwrap();
    publish(&c, "project.created", json!({"i": 0}), "owner_aimd").await;
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    assert_eq!(rate().await, Some(25.0), "halved by the 429");
    publish(&c, "project.created", json!({"i": 1}), "owner_aimd").await;
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    assert_eq!(
        rate().await,
        Some(26.0),
        "one more per second after a success"
    );
    assert_eq!(health(&c, hook).await.1, 0, "a 429 is no failure");
}
