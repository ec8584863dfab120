//! Endpoints in trouble, after the fact (SPEC 7.1): every attempt of a
//! delivery, recover and replay (and backfillSince) in bounded batches, and
//! the owners' notifications consumed exactly once with the documented SQL.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use postbox::dispatch::Dispatcher;
use serde_json::json;
use uuid::Uuid;

use crate::api_support::Api;
use crate::support::*;
use crate::trouble::{notifications, shifted, switchable, with_status};

#[tokio::test]
async fn the_attempts_route_lists_every_attempt_newest_first_with_its_answer() {
    let api = Api::start().await;
    let rx = Receiver::start(Arc::new(|n| {
        if n == 0 {
            Answer {
                body: "down for maintenance".into(),
                ..Answer::status(500)
            }
        } else {
            Answer::status(200)
        }
    }))
    .await;
    let hook = api
        .create(
            "owner_a",
            json!({"name": "a", "url": rx.url(), "events": ["*"]}),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_string();
    let c = api.db.client().await;
    publish(&c, "project.created", json!({"i": 0}), "owner_a").await;
    let (clock, shared) = shifted();
    let d = Dispatcher::new(api.db.store(), dispatch_config(), shared).unwrap();
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    clock.advance(chrono::Duration::seconds(70));
    assert_eq!(d.run_once().await.unwrap().attempts, 1);
    let delivery: Uuid = c
        .query_one("SELECT id FROM postbox.deliveries", &[])
        .await
        .unwrap()
        .get(0);
    let token = api.token("owner_a");
    let path = format!("/api/webhooks/{id}/deliveries/{delivery}/attempts");
    let (status, page) = api.call("GET", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{page}");
    let attempts = page["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 2);
    assert_eq!(attempts[0]["responseCode"], 200);
    assert_eq!(attempts[1]["attempt"], 1);
    assert_eq!(attempts[1]["responseCode"], 500);
    assert_eq!(attempts[1]["responseBody"], "down for maintenance");
    assert!(attempts[1]["errorMessage"].is_string());
    assert!(attempts[1]["durationMs"].is_number());
    assert_eq!(page["pagination"]["total"], 2);
    let (_, second) = api
        .call("GET", &format!("{path}?limit=1&page=2"), Some(&token), None)
        .await;
    assert_eq!(second["data"][0]["attempt"], 1);
    assert_eq!(second["pagination"]["totalPages"], 2);
    let (status, _) = api
        .call("GET", &path, Some(&api.token("someone_else")), None)
        .await;
    assert_eq!(status, 404, "another owner's delivery");
    let (status, _) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries/not-a-uuid/attempts"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn recover_requeues_dead_letters_replay_resends_and_backfill_sends_history() {
    let api = Api::start().await;
    let (down, rx) = switchable().await;
    let hook = api
        .create(
            "owner_r",
            json!({"name": "r", "url": rx.url(), "events": ["project.*"], "maxRetries": 0}),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_string();
    let c = api.db.client().await;
    for i in 0..5 {
        publish(&c, "project.created", json!({"i": i}), "owner_r").await;
    }
    publish(&c, "user.created", json!({"other": true}), "owner_r").await;
    let d = Dispatcher::new(api.db.store(), dispatch_config(), system_clock()).unwrap();
    assert_eq!(d.run_once().await.unwrap().attempts, 5);
    assert_eq!(with_status(&c, "failed").await, 5);
    assert_eq!(notifications(&c, "delivery.dead_lettered").await, 5);

    down.store(false, Ordering::SeqCst);
    let token = api.token("owner_r");
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/recover"),
            Some(&token),
            Some(json!({"since": since, "eventTypes": ["project.created"]})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["data"]["count"], 5);
    assert_eq!(answer["data"]["finished"], true);
    assert_eq!(d.run_once().await.unwrap().attempts, 5);
    assert_eq!(with_status(&c, "success").await, 5);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.delivery_attempts").await,
        10,
        "every earlier attempt kept"
    );
    // Nothing left to recover in the range.
    let (_, again) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/recover"),
            Some(&token),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(again["data"]["count"], 0);

    // Replay sends every matching event again, whatever its outcome.
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/replay"),
            Some(&token),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["data"]["count"], 5, "user.created is not subscribed");
    assert_eq!(d.run_once().await.unwrap().attempts, 5);
    assert_eq!(rx.count(), 15);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.delivery_attempts").await,
        15
    );

    // A new webhook asks for the history on create.
    let rx2 = Receiver::ok().await;
    let created = api
        .create(
            "owner_r",
            json!({"name": "late", "url": rx2.url(), "events": ["*"], "backfillSince": since}),
        )
        .await;
    assert!(created["secret"].is_string());
    assert_eq!(d.run_once().await.unwrap().attempts, 6);
    assert_eq!(rx2.count(), 6);

    // Bad input and other owners.
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (
            json!({"since": since, "eventTypes": ["nope.nope"]}),
            "eventTypes",
        ),
        (json!({"since": since, "extra": 1}), "extra"),
    ] {
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/webhooks/{id}/recover"),
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(answer["error"].to_string().contains(field), "{answer}");
    }
    // An empty range is no error: nothing to do.
    let (status, empty) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/recover"),
            Some(&token),
            Some(json!({"since": since, "until": since})),
        )
        .await;
    assert_eq!(status, 202, "{empty}");
    assert_eq!(empty["data"]["count"], 0);
    assert_eq!(empty["data"]["finished"], true);
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/replay"),
            Some(&api.token("intruder")),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&token),
            Some(json!({"backfillSince": since})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn a_recover_of_many_dead_letters_runs_in_bounded_batches_to_the_end() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = NewWebhook::new("owner_big", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    // 2,500 dead letters written as a psql user would.
    c.batch_execute(&format!(
        "INSERT INTO postbox.events (id, event_type, owner_id, payload, fanout_pending, created_at)
         SELECT postbox.uuid_v7(), 'project.created', 'owner_big', jsonb_build_object('n', i), false,
                now() - interval '10 minutes'
         FROM generate_series(1, 2500) i;
         INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, next_attempt_at,
                                         created_at, completed_at)
         SELECT '{hook}', e.id, e.event_type, 'failed', 4, now(), e.created_at, now()
         FROM postbox.events e;"
    ))
    .await
    .unwrap();
    let store = db.store();
    let range = postbox::store::JobRange {
        since: chrono::Utc::now() - chrono::Duration::hours(1),
        until: chrono::Utc::now(),
        event_types: None,
    };
    let job = store
        .webhook_job_insert(hook, "owner_big", postbox::store::JobKind::Recover, &range)
        .await
        .unwrap()
        .unwrap();
    let mut batches = Vec::new();
    while let Some(p) = store
        .webhook_job_advance(
            job,
            postbox::store::JobKind::Recover,
            1000,
            chrono::Utc::now(),
        )
        .await
        .unwrap()
    {
        batches.push(p.done);
    }
    assert_eq!(
        batches,
        vec![1000, 2000, 2500],
        "one bounded batch per call"
    );
    assert_eq!(with_status(&c, "pending").await, 2500);
    // Another owner's webhook id finds nothing.
    assert!(store
        .webhook_job_insert(hook, "someone", postbox::store::JobKind::Recover, &range)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn notifications_are_consumed_exactly_once_by_concurrent_consumers_and_wake_listeners() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (listener, mut conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener
        .batch_execute("LISTEN postbox_notifications")
        .await
        .unwrap();
    let (hook, _) = NewWebhook::new("owner_n", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    // Postbox disables the webhook (as a 410 answer or auto-disable does).
    c.execute(
        "UPDATE postbox.webhooks SET active = false, disabled_at = now(), disabled_reason = 'gone' WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    let payload = tokio::time::timeout(std::time::Duration::from_secs(10), woken.recv())
        .await
        .expect("NOTIFY postbox_notifications")
        .unwrap();
    assert_eq!(payload, "owner_n");
    // 60 more rows, then three consumers running the documented query.
    c.batch_execute(
        "INSERT INTO postbox.notifications (owner_id, kind, detail)
         SELECT 'owner_n', 'delivery.dead_lettered', jsonb_build_object('n', i)
         FROM generate_series(1, 60) i",
    )
    .await
    .unwrap();
    let consume = documented_consumer();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let client = db.client().await;
        let consume = consume.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen: Vec<Uuid> = Vec::new();
            loop {
                let rows = client.query(&consume, &[&"owner_n"]).await.unwrap();
                if rows.is_empty() {
                    return seen;
                }
                seen.extend(rows.iter().map(|r| r.get::<_, Uuid>("id")));
            }
        }));
    }
    let mut all: Vec<Uuid> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no row consumed twice");
    assert_eq!(total, 61, "every row consumed");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.notifications WHERE processed_at IS NULL"
        )
        .await,
        0
    );
}

/// The consumer statement of docs/INTEGRATION.md ("Operational
/// notifications"), with the owner as `$1`.
fn documented_consumer() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/INTEGRATION.md"))
        .unwrap();
    let marker = "<!-- test: notifications-consumer -->";
    let block = &doc[doc.find(marker).expect("the consumer example") + marker.len()..];
    let start = block.find("WITH next AS").unwrap();
    let end = start + block[start..].find(';').unwrap();
    let sql = block[start..end].replace("'user_7'", "$1");
    assert!(sql.contains("FOR UPDATE SKIP LOCKED"), "{sql}");
    sql
}

#[tokio::test]
async fn maintenance_deletes_old_processed_notifications_and_finished_jobs_only() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = NewWebhook::new("owner_m", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    c.batch_execute(&format!(
        "INSERT INTO postbox.notifications (owner_id, kind, created_at, processed_at) VALUES
           ('owner_m', 'delivery.dead_lettered', now() - interval '30 days', now() - interval '30 days'),
           ('owner_m', 'delivery.dead_lettered', now() - interval '30 days', NULL),
           ('owner_m', 'delivery.dead_lettered', now() - interval '1 day', now() - interval '1 day');
         INSERT INTO postbox.webhook_jobs (webhook_id, kind, since, until, finished_at, created_at) VALUES
           ('{hook}', 'recover', now() - interval '40 days', now() - interval '30 days', now() - interval '30 days', now() - interval '30 days'),
           ('{hook}', 'replay', now() - interval '2 days', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day');"
    ))
    .await
    .unwrap();
    let report = postbox::maintenance::run_once_at(
        &db.store(),
        &postbox::config::MaintenanceConfig::default(),
        chrono::Utc::now(),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((report.deleted_notifications, report.deleted_jobs), (1, 1));
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.notifications WHERE processed_at IS NULL"
        )
        .await,
        1,
        "an unprocessed notification is the owner's until consumed"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.notifications").await,
        2
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.webhook_jobs").await,
        1
    );
}
