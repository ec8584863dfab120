//! Verification of issue 12 (reliability review). Each test states what the
//! issue requires; a failure is a finding.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use postbox::clock::ShiftedClock;
use postbox::config::DispatchConfig;
use postbox::dispatch::Dispatcher;
use postbox::store::{ClaimLimits, Store};
use serde_json::json;

use crate::support::cluster::Cluster;
use crate::support::*;

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// request_timeout 1 s: lease = 2 x 1 s + 30 s = 32 s.
fn short_lease() -> DispatchConfig {
    DispatchConfig {
        request_timeout: Duration::from_secs(1),
        ..dispatch_config()
    }
}

/// A webhook DELETE held open (e.g. a cascade over a big history that then
/// hits statement_timeout and rolls back) blocks the fan-out's FK check for
/// longer than the lease. The claims it makes carry a lease that has already
/// run out when the statement returns: they are sent, their outcome is dropped
/// (deadline passed), and the rescue sends them again. No crash, no outage.
#[tokio::test]
async fn v12_a_fan_out_blocked_past_the_lease_does_not_send_twice() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut holder = db.client().await;
    let rx = Receiver::start(Arc::new(|_| Answer::status(200))).await;
    let (x, _) = NewWebhook::new("x", rx.url(), &["*"]).insert(&c).await;
    let (_y, _) = NewWebhook::new("y", rx.url(), &["*"]).insert(&c).await;
    let running = spawn_dispatcher(db.store(), short_lease(), system_clock());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("DELETE FROM postbox.webhooks WHERE id = $1", &[&x])
        .await
        .unwrap();
    publish(&c, "user.created", json!({"for": "x"}), "x").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&c, "user.created", json!({"for": "y"}), "y").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    eprintln!(
        "v12a: requests after 10 s of the held DELETE (other tenant y included): {}",
        rx.count()
    );
    tokio::time::sleep(Duration::from_secs(24)).await;
    tx.rollback().await.unwrap();
    rx.wait_for(2, Duration::from_secs(20)).await;
    // Rescue runs every 5 s; give it two rounds.
    tokio::time::sleep(Duration::from_secs(12)).await;
    running.shutdown().await;
    let x_attempts: Vec<(i32, Option<i32>, Option<String>)> = c
        .query(
            "SELECT a.attempt, a.response_code, a.error_message FROM postbox.delivery_attempts a
             JOIN postbox.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1 ORDER BY 1",
            &[&x],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    eprintln!("v12a: x attempts {x_attempts:?}");
    assert_eq!(rx.count(), 2, "one request per delivery (x and y)");
}

/// A process that starts while the database is away (or whose first clock
/// reading fails) keeps its host clock (offset 0) until a later reading
/// succeeds; its first pass after the database returns rescues with the
/// skewed host clock and re-sends live claims.
#[tokio::test]
async fn v12_b_an_uncalibrated_clock_does_not_expire_live_claims() {
    let mut cluster = Cluster::new(&[]).await;
    let url = cluster.migrated_db("postbox").await;
    let c = connect(&url).await;
    NewWebhook::new("u", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    publish(&c, "user.created", json!({}), "u").await;
    let store = Store::connect(&url, 2).unwrap();
    // A live claim of another dispatcher, lease 40 s.
    let limits = ClaimLimits {
        limit: 10,
        busy_webhooks: &[],
        busy_room: &[],
        lease: dispatch_config().lease(),
        per_webhook: 10,
    };
    let claimed = store
        .event_fanout_many(10, Utc::now(), limits)
        .await
        .unwrap()
        .claimed;
    assert_eq!(claimed.len(), 1);
    cluster.stop().await;
    let ahead = ShiftedClock::default();
    ahead.advance(chrono::Duration::seconds(45));
    let host: postbox::clock::SharedClock = Arc::new(SkewedHostClock(ahead));
    let other = Store::connect(&url, 2).unwrap();
    let (clock, _) = postbox::app::database_clock(&other, host).await;
    cluster.start().await;
    let d = Dispatcher::new(other, dispatch_config(), clock).unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!(report.rescued, 0, "the claim is live (expires in ~40 s)");
}

/// An in-flight delivery whose row is held FOR UPDATE past the lease: the
/// rescue cannot take it either (SKIP LOCKED), yet the completer drops the
/// 200 it holds at the deadline, so the row is requeued and sent again once
/// the lock goes.
#[tokio::test]
async fn v12_c_a_row_locked_past_the_lease_is_not_sent_twice() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut holder = db.client().await;
    let rx = Receiver::start(Arc::new(|_| Answer {
        delay: Duration::from_millis(800),
        ..Answer::status(200)
    }))
    .await;
    let (x, _) = NewWebhook::new("x", rx.url(), &["*"]).insert(&c).await;
    let running = spawn_dispatcher(db.store(), short_lease(), system_clock());
    publish(&c, "user.created", json!({}), "x").await;
    let tx = holder.transaction().await.unwrap();
    let mut held = 0;
    for _ in 0..200 {
        held = tx
            .query(
                "SELECT id FROM postbox.deliveries WHERE webhook_id = $1 AND status = 'sending' FOR UPDATE",
                &[&x],
            )
            .await
            .unwrap()
            .len();
        if held == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held, 1);
    tokio::time::sleep(Duration::from_secs(36)).await;
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    running.shutdown().await;
    assert_eq!(rx.count(), 1, "sent once: the 200 was in hand");
}

/// A webhook DELETE held open in another transaction: the fan-out skips the
/// webhook (FOR KEY SHARE SKIP LOCKED) instead of waiting on it, so other
/// owners' events are delivered meanwhile; the event waits (fanout_pending)
/// and reaches the webhook once the DELETE rolls back; a DELETE that commits
/// makes nothing fail.
#[tokio::test]
async fn a_held_webhook_delete_stalls_no_other_owner_and_loses_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut holder = db.client().await;
    let rx = Receiver::start(Arc::new(|_| Answer::status(200))).await;
    let (x, _) = NewWebhook::new("x", rx.url(), &["*"]).insert(&c).await;
    NewWebhook::new("y", rx.url(), &["*"]).insert(&c).await;
    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    let tx = holder.transaction().await.unwrap();
    tx.execute("DELETE FROM postbox.webhooks WHERE id = $1", &[&x])
        .await
        .unwrap();
    let for_x = publish(&c, "user.created", json!({"for": "x"}), "x").await;
    publish(&c, "user.created", json!({"for": "y"}), "y").await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].json()["data"]["for"],
        "y",
        "the other owner is not held up"
    );
    assert_eq!(rx.count(), 1, "nothing for x while its DELETE is open");
    let pending: bool = c
        .query_one(
            "SELECT fanout_pending FROM postbox.events WHERE id = $1",
            &[&for_x],
        )
        .await
        .unwrap()
        .get(0);
    assert!(pending, "x's event waits for the DELETE to end");
    tx.rollback().await.unwrap();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got[1].json()["data"]["for"],
        "x",
        "after ROLLBACK, x gets its event"
    );

    let tx = holder.transaction().await.unwrap();
    tx.execute("DELETE FROM postbox.webhooks WHERE id = $1", &[&x])
        .await
        .unwrap();
    let again = publish(&c, "user.created", json!({"for": "x again"}), "x").await;
    tx.commit().await.unwrap();
    wait_until("x's second event is done", Duration::from_secs(10), || {
        let c = &c;
        async move {
            !c.query_one(
                "SELECT fanout_pending FROM postbox.events WHERE id = $1",
                &[&again],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        }
    })
    .await;
    running.shutdown().await;
    assert_eq!(rx.count(), 2, "no delivery for the deleted webhook");
}
