//! Fan-out: which webhooks an event reaches (those subscribed and active
//! when it committed, whatever happens to them before fan-out), and fan-out
//! in bounded steps (one owner's thousands of webhooks do not hold up the
//! other owners' events).

use std::time::{Duration, Instant};

use chrono::Utc;
use postbox::dispatch::Dispatcher;
use postbox::store::{ClaimLimits, FANOUT_MAX_DELIVERIES};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

fn dispatcher(db: &TestDb) -> Dispatcher {
    Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap()
}

/// The events (in publish order) that have a delivery for `webhook`.
async fn events_of(c: &tokio_postgres::Client, webhook: Uuid) -> Vec<Uuid> {
    c.query(
        "SELECT d.event_id FROM postbox.deliveries d JOIN postbox.events e ON e.id = d.event_id
         WHERE d.webhook_id = $1 ORDER BY e.created_at",
        &[&webhook],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn set(c: &tokio_postgres::Client, webhook: Uuid, assignment: &str) {
    c.execute(
        &format!("UPDATE postbox.webhooks SET {assignment} WHERE id = $1"),
        &[&webhook],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_event_committed_before_a_switch_off_and_on_is_delivered() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (w1, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let e1 = publish(&c, "user.created", json!({"n": 1}), "u").await;
    // Off and on again while the event waits for fan-out.
    set(&c, w1, "active = false").await;
    set(&c, w1, "active = true").await;
    let e2 = publish(&c, "user.created", json!({"n": 2}), "u").await;
    // Off while the dispatcher reaches the event: it still gets its row.
    set(&c, w1, "active = false").await;
    let d = dispatcher(&db);
    d.run_once().await.unwrap();
    assert_eq!(events_of(&c, w1).await, vec![e1, e2]);
    // Nothing was sent to the webhook while it was off: its rows are dead
    // letters, which a retry sends once it is on again.
    assert_eq!(rx.count(), 0);
    let failed = c
        .query(
            "SELECT error_message FROM postbox.deliveries WHERE webhook_id = $1 AND status = 'failed'",
            &[&w1],
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    let error: String = failed[0].get(0);
    assert!(error.contains("webhook is disabled"), "{error}");
    set(&c, w1, "active = true").await;
    c.execute(
        "UPDATE postbox.deliveries SET status = 'pending', next_attempt_at = now(), completed_at = NULL",
        &[],
    )
    .await
    .unwrap();
    d.run_once().await.unwrap();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    ids.sort();
    let mut expected = vec![e1.to_string(), e2.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn webhooks_subscribed_after_the_commit_do_not_get_the_event_and_later_events_use_the_new_state(
) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (before, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let (activated, _) = NewWebhook {
        active: false,
        ..NewWebhook::new("u", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let (retyped, _) = NewWebhook::new("u", rx.url(), &["session.*"])
        .insert(&c)
        .await;
    let (switched_off, _) = NewWebhook::new("u", rx.url(), &["user.*"]).insert(&c).await;
    let e1 = publish(&c, "user.created", json!({"n": 1}), "u").await;
    // After the commit: a new webhook, one switched on, one subscribed to
    // the type, one switched off.
    let (created, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    set(&c, activated, "active = true").await;
    set(&c, retyped, "event_types = '{user.created}'").await;
    set(&c, switched_off, "active = false").await;
    let e2 = publish(&c, "user.created", json!({"n": 2}), "u").await;

    dispatcher(&db).run_once().await.unwrap();
    assert_eq!(events_of(&c, before).await, vec![e1, e2]);
    assert_eq!(events_of(&c, created).await, vec![e2]);
    assert_eq!(events_of(&c, activated).await, vec![e2]);
    assert_eq!(events_of(&c, retyped).await, vec![e2]);
    assert_eq!(events_of(&c, switched_off).await, vec![e1]);
    // Two events: e1 to before and switched_off (not sent: it is off now),
    // e2 to the four active webhooks.
    rx.wait_for(5, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_change_counts_from_its_commit_not_from_its_statement() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let producer = db.client().await;
    let rx = Receiver::ok().await;
    let (w, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let (late, _) = NewWebhook {
        active: false,
        ..NewWebhook::new("u", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let tx = c.transaction().await.unwrap();
    tx.execute(
        "UPDATE postbox.webhooks SET active = NOT active WHERE id = ANY($1)",
        &[&vec![w, late]],
    )
    .await
    .unwrap();
    // Committed while the change is still open: before the change.
    let during = publish(&producer, "user.created", json!({}), "u").await;
    tx.commit().await.unwrap();
    let after = publish(&producer, "user.created", json!({}), "u").await;
    dispatcher(&db).run_once().await.unwrap();
    assert_eq!(events_of(&c, w).await, vec![during]);
    assert_eq!(events_of(&c, late).await, vec![after]);
}

#[tokio::test]
async fn prune_keeps_exactly_the_changes_a_waiting_event_needs() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let store = db.store();
    let changes = "SELECT count(*) FROM postbox.webhook_subscription_changes";
    let (w, _) = NewWebhook::new("u", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    // The creation is a change no event committed before: not needed.
    assert_eq!(count(&c, changes).await, 1);
    assert_eq!(
        store.webhook_subscription_change_prune(100).await.unwrap(),
        1
    );
    publish(&c, "user.created", json!({}), "u").await;
    set(&c, w, "active = false").await;
    set(&c, w, "active = true").await;
    // The waiting event committed before both: both are kept.
    assert_eq!(
        store.webhook_subscription_change_prune(100).await.unwrap(),
        0
    );
    assert_eq!(count(&c, changes).await, 2);
    let limits = ClaimLimits {
        limit: 0,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 0,
    };
    let fan = store
        .event_fanout_many(10, Utc::now(), limits)
        .await
        .unwrap();
    assert_eq!((fan.events, fan.deliveries), (1, 1));
    assert_eq!(store.webhook_subscription_change_prune(1).await.unwrap(), 1);
    assert_eq!(
        store.webhook_subscription_change_prune(100).await.unwrap(),
        1
    );
    assert_eq!(count(&c, changes).await, 0);
}

#[tokio::test]
async fn a_large_owner_is_fanned_out_in_steps_while_a_small_owners_event_goes_in_the_first() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    c.execute(
        "INSERT INTO postbox.webhooks (owner_id, url, event_types)
         SELECT 'big', $1, '{*}' FROM generate_series(1, 2000)",
        &[&rx.url()],
    )
    .await
    .unwrap();
    let (small, _) = NewWebhook::new("small", rx.url(), &["*"]).insert(&c).await;
    for n in 0..10 {
        publish(&c, "project.updated", json!({ "n": n }), "big").await;
    }
    let small_event = publish(&c, "project.updated", json!({}), "small").await;
    let store = db.store();
    store
        .webhook_subscription_change_prune(10_000)
        .await
        .unwrap();

    // The first pass: the small owner's event is done, every big one has
    // started, and the statement created no more than its bound.
    let started = Instant::now();
    let report = dispatcher(&db).run_once().await.unwrap();
    eprintln!(
        "first pass (fan-out, claim, {} requests): {:?}",
        report.attempts,
        started.elapsed()
    );
    assert_eq!(report.events_fanned_out, 11);
    assert!(report.deliveries_created <= FANOUT_MAX_DELIVERIES);
    assert_eq!(events_of(&c, small).await, vec![small_event]);
    let pending = count(
        &c,
        "SELECT count(*) FROM postbox.events WHERE fanout_pending AND fanout_cursor IS NOT NULL",
    )
    .await;
    assert_eq!(pending, 10, "every big event is partly done");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE owner_id = 'small' AND fanout_pending"
        )
        .await,
        0
    );

    // Later passes finish the rest, each bounded; every pair exactly once.
    let limits = ClaimLimits {
        limit: 0,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 0,
    };
    let mut passes = 1;
    loop {
        let started = Instant::now();
        let fan = store
            .event_fanout_many(128, Utc::now(), limits)
            .await
            .unwrap();
        if passes == 1 {
            eprintln!(
                "second pass (fan-out only, {} deliveries): {:?}",
                fan.deliveries,
                started.elapsed()
            );
        }
        assert!(fan.deliveries <= FANOUT_MAX_DELIVERIES);
        passes += 1;
        if fan.partial == 0 {
            break;
        }
        assert!(passes < 100, "fan-out makes progress");
    }
    assert!(passes >= 20, "20,001 deliveries took {passes} passes");
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        20_001
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE fanout_pending"
        )
        .await,
        0
    );
}
