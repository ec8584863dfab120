//! The pipeline end to end: publish -> fan-out -> claim -> signed request ->
//! recorded outcome, with retries, leases and several dispatchers.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use postbox::clock::{SharedClock, ShiftedClock};
use postbox::dispatch::{Dispatcher, TestSignals};
use postbox::signing::{verify, SigningKey};
use postbox::store::{ClaimLimits, Completion, DeliveryStatus};
use serde_json::json;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn rolled_back_publish_is_never_delivered() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    let tx = c.transaction().await.unwrap();
    tx.query_one(
        "SELECT postbox.publish('project.updated', '{\"id\": 1}', 'user_7')",
        &[],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    publish(&c, "project.updated", json!({"id": 2}), "user_7").await;

    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!(report.events_fanned_out, 1);
    assert_eq!(report.attempts, 1);
    let got = rx.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"], json!({"id": 2}));
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 1);
}

#[tokio::test]
async fn a_committed_event_reaches_each_matching_webhook_once_signed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (exact, exact_secret) = NewWebhook::new("user_7", rx.url(), &["project.updated"])
        .insert(&c)
        .await;
    let (group, _) = NewWebhook::new("user_7", rx.url(), &["project.*"])
        .insert(&c)
        .await;
    let (all, _) = NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    // These must get nothing: other type, other owner, inactive, other group.
    NewWebhook::new("user_7", rx.url(), &["project.created"])
        .insert(&c)
        .await;
    NewWebhook::new("user_8", rx.url(), &["*"]).insert(&c).await;
    NewWebhook {
        active: false,
        ..NewWebhook::new("user_7", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    NewWebhook::new("user_7", rx.url(), &["session.*"])
        .insert(&c)
        .await;

    let signals = TestSignals::new();
    let running = spawn_signalled(db.store(), dispatch_config(), system_clock(), &signals);
    let event_id = publish(
        &c,
        "project.updated",
        json!({"id": 42, "name": "Atlas"}),
        "user_7",
    )
    .await;
    let got = rx.wait_for(3, WAIT).await;
    let done = signalled(&signals, "three outcomes recorded", |s| s.completed >= 3).await;
    // Asleep after its last look: it found nothing more to send.
    signalled(&signals, "idle after the outcomes", |s| s.idle > done.idle).await;
    running.shutdown().await;
    assert_eq!(rx.count(), 3, "exactly one request per matching webhook");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'"
        )
        .await,
        3
    );

    let deliveries = c
        .query(
            "SELECT id, webhook_id, attempts, response_code FROM postbox.deliveries",
            &[],
        )
        .await
        .unwrap();
    let mut hooks: Vec<uuid::Uuid> = deliveries.iter().map(|r| r.get(1)).collect();
    hooks.sort();
    let mut expected = vec![exact, group, all];
    expected.sort();
    assert_eq!(hooks, expected);
    assert!(deliveries
        .iter()
        .all(|r| r.get::<_, i32>(2) == 1 && r.get::<_, Option<i32>>(3) == Some(200)));
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.delivery_attempts WHERE response_code = 200"
        )
        .await,
        3
    );

    // The request to the exact-type webhook, checked header by header.
    let exact_delivery: uuid::Uuid = c
        .query_one(
            "SELECT id FROM postbox.deliveries WHERE webhook_id = $1",
            &[&exact],
        )
        .await
        .unwrap()
        .get(0);
    let req = got
        .iter()
        .find(|r| r.header("x-webhook-delivery") == exact_delivery.to_string())
        .expect("the exact webhook's request");
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.header("webhook-id"), event_id.to_string());
    assert_eq!(req.header("x-webhook-event"), "project.updated");
    assert_eq!(req.header("x-webhook-attempt"), "1");
    assert!(req.header("user-agent").starts_with("postbox/"));
    let ts: i64 = req.header("webhook-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - ts).abs() < 60);
    let key = SigningKey::from_secret(&exact_secret).unwrap();
    verify(
        &key,
        Some(req.header("webhook-id")),
        Some(req.header("webhook-timestamp")),
        Some(req.header("webhook-signature")),
        &req.body,
        Utc::now().timestamp(),
        300,
    )
    .expect("signature verifies with the webhook's secret");
    let body = req.json();
    assert_eq!(body["id"], event_id.to_string());
    assert_eq!(body["type"], "project.updated");
    assert_eq!(body["data"], json!({"id": 42, "name": "Atlas"}));
    let stamp = body["timestamp"].as_str().unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() == 24, "{stamp}");
}

async fn one_failing_delivery(
    answer: Answer,
    max_retries: i32,
) -> (
    TestDb,
    Receiver,
    Dispatcher,
    ShiftedClock,
    tokio_postgres::Client,
) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(move |_| answer.clone())).await;
    NewWebhook {
        max_retries,
        ..NewWebhook::new("u", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    publish(
        &c,
        "user.created",
        json!({"id": "u1", "unicode": "Zoë 東京"}),
        "u",
    )
    .await;
    let clock = ShiftedClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    let d = Dispatcher::new(db.store(), dispatch_config(), shared).unwrap();
    (db, rx, d, clock, c)
}

async fn delivery_state(
    c: &tokio_postgres::Client,
) -> (DeliveryStatus, i32, chrono::DateTime<Utc>) {
    let r = c
        .query_one(
            "SELECT status, attempts, next_attempt_at FROM postbox.deliveries",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn failures_follow_the_retry_schedule_then_dead_letter() {
    let (_db, rx, d, clock, c) = one_failing_delivery(Answer::status(500), 2).await;
    // Attempt 1 fails: retry 1 after 60 s (+ up to 10 %).
    let t0 = clock_now(&clock);
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    let (status, attempts, next) = delivery_state(&c).await;
    assert_eq!((status, attempts), (DeliveryStatus::Retrying, 1));
    let wait = (next - t0).num_milliseconds();
    assert!(
        (59_000..=68_000).contains(&wait),
        "first retry after {wait} ms"
    );
    // Not due yet: nothing happens.
    assert_eq!(d.run_once().await.unwrap().attempts, 0);
    // Retry 1 after 60 s; it fails: retry 2 after 120 s.
    clock.advance(chrono::Duration::seconds(67));
    let t1 = clock_now(&clock);
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    let (status, attempts, next) = delivery_state(&c).await;
    assert_eq!((status, attempts), (DeliveryStatus::Retrying, 2));
    let wait = (next - t1).num_milliseconds();
    assert!(
        (119_000..=134_000).contains(&wait),
        "second retry after {wait} ms"
    );
    // Retry 2 is the last: failed, the dead letter.
    clock.advance(chrono::Duration::seconds(133));
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    let (status, attempts, _) = delivery_state(&c).await;
    assert_eq!((status, attempts), (DeliveryStatus::Failed, 3));
    clock.advance(chrono::Duration::days(1));
    assert_eq!(
        d.run_once().await.unwrap().attempts,
        0,
        "a dead letter is not retried"
    );

    let got = rx.all();
    assert_eq!(got.len(), 3);
    let attempts: Vec<&str> = got.iter().map(|r| r.header("x-webhook-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "byte-identical body on every attempt"
    );
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == got[0].header("webhook-id")));
    let rows = c
        .query("SELECT attempt, response_code, error_message FROM postbox.delivery_attempts ORDER BY attempt", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>(0), i as i32 + 1);
        assert_eq!(r.get::<_, Option<i32>>(1), Some(500));
        assert_eq!(
            r.get::<_, Option<String>>(2).as_deref(),
            Some("endpoint answered HTTP 500")
        );
    }
    let completed: Option<chrono::DateTime<Utc>> = c
        .query_one("SELECT completed_at FROM postbox.deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert!(completed.is_some());
}

fn clock_now(clock: &ShiftedClock) -> chrono::DateTime<Utc> {
    use postbox::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn retry_after_on_429_lengthens_the_wait() {
    let answer = Answer {
        headers: vec![("retry-after".into(), "600".into())],
        ..Answer::status(429)
    };
    let (_db, _rx, d, clock, c) = one_failing_delivery(answer, 3).await;
    let t0 = clock_now(&clock);
    d.run_once().await.unwrap();
    let (status, _, next) = delivery_state(&c).await;
    assert_eq!(status, DeliveryStatus::Retrying);
    let wait = (next - t0).num_seconds();
    assert!((599..=605).contains(&wait), "waited {wait} s");
}

#[tokio::test]
async fn a_killed_dispatcher_loses_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // The first request hangs (the dispatcher "dies" during it); later ones succeed.
    let rx = Receiver::start(Arc::new(|n| Answer {
        delay: if n == 0 {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        },
        ..Answer::status(200)
    }))
    .await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    publish(&c, "session.started", json!({"s": 1}), "u").await;
    let doomed = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    rx.wait_for(1, WAIT).await;
    doomed.stop.cancel();
    doomed.handle.abort(); // killed: no shutdown, no completion
    let _ = doomed.handle.await;
    let (status, attempts, _) = delivery_state(&c).await;
    assert_eq!((status, attempts), (DeliveryStatus::Sending, 1));

    // Another dispatcher, once the lease has expired, takes it back and delivers it.
    let clock = ShiftedClock::default();
    clock.advance(
        chrono::Duration::from_std(dispatch_config().lease()).unwrap()
            + chrono::Duration::seconds(1),
    );
    let rescuer = Dispatcher::new(db.store(), dispatch_config(), Arc::new(clock)).unwrap();
    let report = rescuer.run_once().await.unwrap();
    assert_eq!(report.rescued, 1);
    assert_eq!(report.attempts, 1);
    let (status, attempts, _) = delivery_state(&c).await;
    assert_eq!((status, attempts), (DeliveryStatus::Success, 2));
    let errors: Vec<Option<String>> = c
        .query(
            "SELECT error_message FROM postbox.delivery_attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].as_deref().unwrap().contains("lease expired"));
    assert_eq!(rx.all()[1].header("x-webhook-attempt"), "2");
}

#[tokio::test]
async fn a_late_completion_after_a_takeover_changes_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    NewWebhook::new("u", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    publish(&c, "user.created", json!({}), "u").await;
    let store = db.store();
    let now = Utc::now();
    let limits = ClaimLimits {
        limit: 10,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 10,
    };
    // Fan-out claims the new delivery at once: attempt 1.
    let first = store
        .event_fanout_many(10, now, limits)
        .await
        .unwrap()
        .claimed;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    let later = now + chrono::Duration::seconds(61);
    assert_eq!(store.delivery_rescue_expired(later, 10).await.unwrap(), 1);
    let second = store.delivery_claim(later, limits).await.unwrap();
    assert_eq!(second[0].attempt, 2);
    let outcome = |attempt, status| Completion {
        delivery_id: first[0].id,
        webhook_id: first[0].webhook_id,
        attempt,
        status,
        next_attempt_at: None,
        response_code: Some(200),
        response_body: Some(String::new()),
        error_message: None,
        started_at: now,
        duration_ms: 5,
        throttle_until: None,
        endpoint_ok: None,
        ordering_key: None,
        leave_line: false,
    };
    // The first claimer finally answers: its lease is gone, nothing changes.
    assert_eq!(
        store
            .delivery_complete_many(&[outcome(1, DeliveryStatus::Success)], later)
            .await
            .unwrap()
            .applied,
        0
    );
    assert_eq!(delivery_state(&c).await.0, DeliveryStatus::Sending);
    assert_eq!(
        store
            .delivery_complete_many(&[outcome(2, DeliveryStatus::Failed)], later)
            .await
            .unwrap()
            .applied,
        1
    );
    assert_eq!(delivery_state(&c).await.0, DeliveryStatus::Failed);
}

#[tokio::test]
async fn two_dispatchers_never_send_the_same_delivery_twice() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(|_| Answer {
        delay: Duration::from_millis(2),
        ..Answer::status(200)
    }))
    .await;
    for _ in 0..4 {
        NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    }
    c.execute(
        "SELECT postbox.publish('session.message', jsonb_build_object('n', g), 'u') FROM generate_series(1, 300) g",
        &[],
    )
    .await
    .unwrap();
    let config = postbox::config::DispatchConfig {
        batch_size: 25,
        concurrency: 16,
        ..dispatch_config()
    };
    let signals = TestSignals::new();
    let a = spawn_signalled(db.store(), config.clone(), system_clock(), &signals);
    let b = spawn_signalled(db.store(), config, system_clock(), &signals);
    rx.wait_for(1200, Duration::from_secs(60)).await;
    signalled(&signals, "1200 outcomes recorded", |s| s.completed >= 1200).await;
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'"
        )
        .await,
        1200
    );
    assert_eq!(signals.seen().claimed, 1200, "each delivery claimed once");
    let mut ids: Vec<String> = rx
        .all()
        .iter()
        .map(|r| r.header("x-webhook-delivery").to_string())
        .collect();
    assert_eq!(ids.len(), 1200);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1200, "no delivery was sent twice");
}

#[tokio::test]
async fn a_paused_queue_claims_nothing_until_resumed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    c.execute("UPDATE postbox.queue_state SET paused = true", &[])
        .await
        .unwrap();
    publish(&c, "user.created", json!({}), "u").await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!((report.deliveries_created, report.attempts), (1, 0));
    let paused: i64 = c
        .query_one("SELECT paused FROM postbox.queue_stats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(paused, 1);
    c.execute("UPDATE postbox.queue_state SET paused = false", &[])
        .await
        .unwrap();
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn notify_wakes_an_idle_dispatcher_long_before_its_poll() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let config = postbox::config::DispatchConfig {
        poll_interval: Duration::from_secs(3600),
        ..dispatch_config()
    };
    let signals = TestSignals::new();
    let running = spawn_signalled(db.store(), config, system_clock(), &signals);
    signalled(&signals, "idle at start", |s| s.idle >= 1).await;
    for i in 0..5 {
        let before = signals.seen().idle;
        publish(&c, "user.created", json!({"i": i}), "u").await;
        rx.wait_for(i + 1, Duration::from_secs(5)).await;
        signalled(&signals, "recorded, then idle again", |s| {
            s.completed > i as u64 && s.idle > before
        })
        .await;
    }
    // The wake-up connection dies; the dispatcher listens again and still wakes.
    let before = signals.seen().idle;
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        &[],
    )
    .await
    .unwrap();
    // Woken once when the connection drops, once when it listens again.
    signalled(&signals, "idle after listening again", |s| {
        s.idle >= before + 2
    })
    .await;
    publish(&c, "user.created", json!({"i": "after"}), "u").await;
    rx.wait_for(6, Duration::from_secs(10)).await;
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_records_them() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(|_| Answer {
        delay: Duration::from_millis(700),
        ..Answer::status(200)
    }))
    .await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    for i in 0..3 {
        publish(&c, "user.created", json!({"i": i}), "u").await;
    }
    rx.wait_for(3, WAIT).await;
    running.shutdown().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'sending'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn stats_views_count_by_status() {
    let (_db, _rx, d, _clock, c) = one_failing_delivery(Answer::status(500), 3).await;
    d.run_once().await.unwrap();
    let r = c
        .query_one("SELECT total, success, failed, pending, retrying, last_delivery_at IS NOT NULL FROM postbox.webhook_stats", &[])
        .await
        .unwrap();
    assert_eq!(
        (
            r.get::<_, i64>(0),
            r.get::<_, i64>(1),
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            r.get::<_, i64>(4),
            r.get::<_, bool>(5)
        ),
        (1, 0, 0, 0, 1, true)
    );
    let q = c
        .query_one(
            "SELECT waiting, active, completed, failed, delayed, paused FROM postbox.queue_stats",
            &[],
        )
        .await
        .unwrap();
    let counts: Vec<i64> = (0..6).map(|i| q.get(i)).collect();
    assert_eq!(counts, vec![0, 0, 0, 0, 1, 0]);
}

#[tokio::test]
async fn due_retries_are_claimed_while_new_events_keep_arriving() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let busy = Receiver::ok().await;
    // Fails once, then succeeds; retry_delay 0: the retry is due at once.
    let flaky = Receiver::start(Arc::new(|n| Answer::status(if n == 0 { 500 } else { 200 }))).await;
    NewWebhook::new("busy", busy.url(), &["*"]).insert(&c).await;
    NewWebhook {
        retry_delay_seconds: 0,
        ..NewWebhook::new("flaky", flaky.url(), &["*"])
    }
    .insert(&c)
    .await;
    let signals = TestSignals::new();
    let running = spawn_signalled(db.store(), dispatch_config(), system_clock(), &signals);
    let stop = tokio_util::sync::CancellationToken::new();
    let producer = {
        let (url, stop) = (db.url.clone(), stop.clone());
        tokio::spawn(async move {
            let (pc, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.is_cancelled() {
                publish(&pc, "session.message", json!({"m": 1}), "busy").await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    signalled(&signals, "steady traffic claimed", |s| s.claimed >= 10).await;
    publish(&c, "user.created", json!({"id": 1}), "flaky").await;
    let got = flaky.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].header("x-webhook-attempt"), "2");
    stop.cancel();
    producer.await.unwrap();
    running.shutdown().await;
    assert!(busy.count() > 10, "the steady traffic was delivered too");
}

#[tokio::test]
async fn one_pass_keeps_each_webhook_under_its_in_flight_cap() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    for i in 0..5 {
        publish(&c, "user.created", json!({"i": i}), "u").await;
    }
    let config = postbox::config::DispatchConfig {
        endpoint_concurrency: 2,
        ..dispatch_config()
    };
    let d = Dispatcher::new(db.store(), config, system_clock()).unwrap();
    // The fan-out claims two; the claim that follows sees them in flight.
    let report = d.run_once().await.unwrap();
    assert_eq!((report.deliveries_created, report.attempts), (5, 2));
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'pending'"
        )
        .await,
        3
    );
    // Two fast answers raised the cap to 4 (tests/it/endpoint_cap.rs).
    assert_eq!(d.run_once().await.unwrap().attempts, 3);
    assert_eq!(rx.count(), 5);
}
