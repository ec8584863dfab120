//! Endpoints in trouble (SPEC 7.1), end to end against real Postgres and a
//! recording receiver: pause holds and resume releases in due order, the
//! circuit breaker opens on a dead endpoint, probes alone and closes on
//! recovery, the webhook's fields and their validation.
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
fn one_at_a_time() -> DispatchConfig {
    DispatchConfig {
        concurrency: 1,
        endpoint_concurrency: 1,
        ..dispatch_config()
    }
}

fn shifted() -> (ShiftedClock, SharedClock) {
    let clock = ShiftedClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}

async fn health(c: &tokio_postgres::Client, hook: Uuid) -> (String, i32, bool) {
    let r = c
        .query_one(
            "SELECT breaker_state, consecutive_failures, paused FROM postbox.webhook_health WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn notifications(c: &tokio_postgres::Client, kind: &str) -> i64 {
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
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'"
        )
        .await,
        12
    );
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
