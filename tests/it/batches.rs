//! Batched delivery (SPEC 7.3): up to maxEvents events per signed request,
//! sent once that many are queued or the oldest has waited maxWaitMs; the
//! batch id is the request's webhook-id and each delivery row records it; a
//! failed batch is retried as a whole (same id, same bytes); filters apply.

use std::sync::Arc;
use std::time::Duration;

use postbox::clock::ShiftedClock;
use postbox::dispatch::Dispatcher;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api_support::Api;
use crate::support::*;

/// A batched webhook of the owner "fleet", subscribed to everything.
fn fleet(url: String, batch: Value) -> NewWebhook<'static> {
    NewWebhook {
        batch: Some(batch),
        ..NewWebhook::new("fleet", url, &["*"])
    }
}

/// (status, attempts, batch_id) of each of the webhook's deliveries, in
/// event order.
async fn rows(c: &tokio_postgres::Client, webhook: Uuid) -> Vec<(String, i32, Option<Uuid>)> {
    c.query(
        "SELECT d.status::text, d.attempts, d.batch_id FROM postbox.deliveries d
         JOIN postbox.events e ON e.id = d.event_id
         WHERE d.webhook_id = $1 ORDER BY e.created_at, e.id",
        &[&webhook],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

async fn publish_n(c: &tokio_postgres::Client, from: i64, n: i64) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in from..from + n {
        ids.push(publish(c, "agent.connected", json!({"n": i}), "fleet").await);
    }
    ids
}

#[tokio::test]
async fn a_full_batch_goes_as_one_signed_request() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, secret) = fleet(rx.url(), json!({"maxEvents": 3, "maxWaitMs": 60000}))
        .insert(&c)
        .await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    // Two events: not full, not waited long enough: nothing goes.
    let mut events = publish_n(&c, 1, 2).await;
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 0);
    assert!(rows(&c, hook).await.iter().all(|r| r.0 == "pending"));
    // The third fills the batch.
    events.extend(publish_n(&c, 3, 1).await);
    d.run_once().await.unwrap();
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let body = r.json();
    assert_eq!(body["type"], "batch");
    let batch_id = body["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("webhook-id"), batch_id);
    assert_eq!(r.header("x-webhook-batch-size"), "3");
    assert_eq!(r.header("x-webhook-event"), "batch");
    assert_eq!(r.header("x-webhook-attempt"), "1");
    assert!(r.verifies(&secret), "the batch is signed");
    // Each event's own body, in publish order.
    let data = body["data"].as_array().unwrap();
    let ids: Vec<String> = data
        .iter()
        .map(|e| e["id"].as_str().unwrap().into())
        .collect();
    let want: Vec<String> = events.iter().map(Uuid::to_string).collect();
    assert_eq!(ids, want);
    assert_eq!(data[0]["type"], "agent.connected");
    assert_eq!(data[2]["data"], json!({"n": 3}));
    assert!(data[0]["timestamp"].is_string());
    // Every row records the batch and its success.
    let batch = Uuid::parse_str(&batch_id).unwrap();
    assert_eq!(
        rows(&c, hook).await,
        vec![("success".to_string(), 1, Some(batch)); 3]
    );
    // The history shows it too.
    let (history, _) = db
        .store()
        .delivery_list_by_webhook(hook, "fleet", None, 10, 0)
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|d| d.batch_id == Some(batch)));
}

#[tokio::test]
async fn a_batch_that_is_not_full_goes_after_max_wait() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = NewWebhook {
        // A batch carries the standard bodies, whatever the template.
        template: Some(json!("slack")),
        ..fleet(rx.url(), json!({"maxEvents": 100, "maxWaitMs": 30000}))
    }
    .insert(&c)
    .await;
    publish_n(&c, 1, 5).await;
    let clock = ShiftedClock::default();
    let d = Dispatcher::new(db.store(), dispatch_config(), Arc::new(clock.clone())).unwrap();
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 0, "the oldest has not waited 30 s");
    clock.advance(chrono::Duration::seconds(31));
    d.run_once().await.unwrap();
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-webhook-batch-size"), "5");
    let data = got[0].json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 5);
    assert_eq!(data[0]["type"], "agent.connected");
    assert_eq!(data[0]["data"], json!({"n": 1}));
    assert!(rows(&c, hook).await.iter().all(|r| r.0 == "success"));
}

#[tokio::test]
async fn max_events_splits_a_backlog_and_filters_still_apply() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = fleet(rx.url(), json!({"maxEvents": 4, "maxWaitMs": 0}))
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET filter = '{\"path\": \"$.n % 2 == 0\"}' WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    publish_n(&c, 1, 20).await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    // 10 even events: batches of 4, 4 and 2.
    for _ in 0..5 {
        d.run_once().await.unwrap();
    }
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    let mut sizes: Vec<usize> = got
        .iter()
        .map(|r| r.json()["data"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [2, 4, 4]);
    let mut ns: Vec<i64> = got
        .iter()
        .flat_map(|r| {
            r.json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["n"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    ns.sort();
    assert_eq!(ns, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    let rows = rows(&c, hook).await;
    assert_eq!(rows.len(), 10, "odd events got no delivery row");
    let mut batches: Vec<Uuid> = rows.iter().map(|r| r.2.unwrap()).collect();
    batches.sort();
    batches.dedup();
    assert_eq!(batches.len(), 3);
}

#[tokio::test]
async fn a_failed_batch_is_retried_as_a_whole_with_the_same_id_and_bytes() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // 500 twice, then 200.
    let rx = Receiver::start(Arc::new(|n| Answer::status(if n < 2 { 500 } else { 200 }))).await;
    let (hook, _) = NewWebhook {
        retry_delay_seconds: 0,
        ..fleet(rx.url(), json!({"maxEvents": 3, "maxWaitMs": 0}))
    }
    .insert(&c)
    .await;
    publish_n(&c, 1, 3).await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    rx.wait_for(1, Duration::from_secs(10)).await;
    let after_first = rows(&c, hook).await;
    assert!(
        after_first.iter().all(|r| r.0 == "retrying" && r.1 == 1),
        "{after_first:?}"
    );
    // An event published meanwhile does not join the failed batch.
    publish_n(&c, 4, 1).await;
    d.run_once().await.unwrap();
    d.run_once().await.unwrap();
    d.run_once().await.unwrap();
    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    let first_id = got[0].header("webhook-id").to_string();
    let retries: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-id") == first_id)
        .collect();
    assert_eq!(retries.len(), 3, "attempts 1, 2 and 3 of the same batch");
    assert!(
        retries.iter().all(|r| r.body == got[0].body),
        "same bytes every time"
    );
    let attempts: Vec<&str> = retries
        .iter()
        .map(|r| r.header("x-webhook-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let others: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-id") != first_id)
        .collect();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].header("x-webhook-batch-size"), "1");
    let rows = rows(&c, hook).await;
    let batch = Uuid::parse_str(&first_id).unwrap();
    assert_eq!(rows[..3], vec![("success".to_string(), 3, Some(batch)); 3]);
    assert_eq!(rows[3].0, "success");
    assert_ne!(rows[3].2, Some(batch));
    // Every attempt of every member is recorded.
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT count(*) FROM postbox.delivery_attempts a
                 JOIN postbox.deliveries d ON d.id = a.delivery_id WHERE d.batch_id = '{batch}'"
            )
        )
        .await,
        9
    );
}

#[tokio::test]
async fn the_api_takes_batch_settings_and_refuses_bad_ones() {
    let api = Api::start().await;
    let t = api.token("fleet");
    let made = api
        .create(
            "fleet",
            json!({"name": "b", "url": "http://127.0.0.1:9/", "events": ["*"], "batch": {"maxEvents": 50}}),
        )
        .await;
    assert_eq!(made["batch"], json!({"maxEvents": 50, "maxWaitMs": 1000}));
    let id = made["id"].as_str().unwrap().to_string();
    for (batch, field) in [
        (json!({"maxEvents": 0}), "batch.maxEvents"),
        (json!({"maxEvents": 1001}), "batch.maxEvents"),
        (json!({"maxEvents": 1.5}), "batch.maxEvents"),
        (json!({"maxWaitMs": 10}), "batch.maxEvents"),
        (
            json!({"maxEvents": 5, "maxWaitMs": 60001}),
            "batch.maxWaitMs",
        ),
        (json!({"maxEvents": 5, "size": 1}), "batch.size"),
        (json!(5), "batch"),
    ] {
        let (s, j) = api
            .call(
                "PUT",
                &format!("/api/webhooks/{id}"),
                Some(&t),
                Some(json!({ "batch": batch })),
            )
            .await;
        assert_eq!(s, 400, "{batch}: {j}");
        assert!(j["error"].to_string().contains(field), "{batch}: {j}");
    }
    let (s, j) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&t),
            Some(json!({"batch": null})),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["batch"], Value::Null);
}

#[tokio::test]
async fn one_claim_takes_several_full_batches_but_never_more_than_asked() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = fleet(
        "http://127.0.0.1:9/".into(),
        json!({"maxEvents": 5, "maxWaitMs": 60000}),
    )
    .insert(&c)
    .await;
    publish_n(&c, 1, 23).await;
    let store = db.store();
    let limits = |limit| postbox::store::ClaimLimits {
        limit,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 32,
    };
    // Fan out only (claims nothing): the rows wait for their batch.
    store
        .event_fanout_many(100, chrono::Utc::now(), limits(0))
        .await
        .unwrap();
    let first = store
        .delivery_claim_batch_many(chrono::Utc::now(), limits(2))
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "asked for two batches");
    let rest = store
        .delivery_claim_batch_many(chrono::Utc::now(), limits(10))
        .await
        .unwrap();
    // 23 rows: two batches taken, two more full ones, and 3 rows that are
    // neither a full batch nor due: they wait.
    assert_eq!(rest.len(), 2);
    for claim in first.iter().chain(&rest) {
        let batch = claim.batch.as_ref().expect("a batch claim");
        assert_eq!(batch.members.len(), 5);
        assert_eq!(claim.webhook_id, hook);
    }
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'pending' AND batch_id IS NULL"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn a_paused_queue_sends_no_batch_until_resumed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = fleet(rx.url(), json!({"maxEvents": 2, "maxWaitMs": 0}))
        .insert(&c)
        .await;
    c.execute("UPDATE postbox.queue_state SET paused = true", &[])
        .await
        .unwrap();
    publish_n(&c, 1, 4).await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 0, "paused: nothing claimed");
    assert!(rows(&c, hook)
        .await
        .iter()
        .all(|r| r.0 == "pending" && r.2.is_none()));
    c.execute("UPDATE postbox.queue_state SET paused = false", &[])
        .await
        .unwrap();
    d.run_once().await.unwrap();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.header("x-webhook-batch-size") == "2"));
}

#[tokio::test]
async fn a_dead_lettered_member_retried_by_hand_goes_in_a_new_batch() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(Arc::new(|n| Answer::status(if n == 0 { 500 } else { 200 }))).await;
    let (hook, _) = NewWebhook {
        max_retries: 0,
        ..fleet(rx.url(), json!({"maxEvents": 3, "maxWaitMs": 0}))
    }
    .insert(&c)
    .await;
    publish_n(&c, 1, 3).await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    let first = rx.wait_for(1, Duration::from_secs(10)).await[0].clone();
    assert!(rows(&c, hook).await.iter().all(|r| r.0 == "failed"));
    // The API's retry of one member: a new batch of one, a new id.
    let one: Uuid = c
        .query_one(
            "SELECT id FROM postbox.deliveries WHERE webhook_id = $1 LIMIT 1",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    db.store().delivery_retry(one, hook, "fleet").await.unwrap();
    d.run_once().await.unwrap();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("x-webhook-batch-size"), "1");
    assert_ne!(got[1].header("webhook-id"), first.header("webhook-id"));
    let status: String = c
        .query_one(
            "SELECT status::text FROM postbox.deliveries WHERE id = $1",
            &[&one],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "success");
}
