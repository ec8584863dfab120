//! Faults: the database going away, rows held by another transaction, a
//! webhook deleted mid-flight, a crash during a test send. Each test states
//! what must hold and fails without the fix it guards.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use postbox::clock::ShiftedClock;
use postbox::config::DispatchConfig;
use postbox::dispatch::{Dispatcher, TestSignals};
use postbox::store::{ClaimLimits, Completion, DeliveryStatus, Store};
use serde_json::json;

use crate::api_support::Api;
use crate::support::cluster::Cluster;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Every request answered 200 after `delay`.
async fn slow_receiver(delay: Duration) -> Receiver {
    Receiver::start(Arc::new(move |_| Answer {
        delay,
        ..Answer::status(200)
    }))
    .await
}

fn roomy() -> DispatchConfig {
    DispatchConfig {
        concurrency: 32,
        endpoint_concurrency: 32,
        ..dispatch_config()
    }
}

async fn publish_many(c: &tokio_postgres::Client, owner: &str, n: i32) {
    c.execute(
        "SELECT postbox.publish('user.created', jsonb_build_object('n', g), $1) FROM generate_series(1, $2) g",
        &[&owner, &n],
    )
    .await
    .unwrap();
}

async fn successes(c: &tokio_postgres::Client, webhook: uuid::Uuid) -> i64 {
    c.query_one(
        "SELECT count(*) FROM postbox.deliveries WHERE webhook_id = $1 AND status = 'success'",
        &[&webhook],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn outcomes_that_arrive_while_the_database_is_away_are_recorded_when_it_returns() {
    let mut cluster = Cluster::new(&[]).await;
    let url = cluster.migrated_db("postbox").await;
    let c = connect(&url).await;
    let rx = slow_receiver(Duration::from_secs(2)).await;
    let (hook, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let signals = TestSignals::new();
    let store = Store::connect(&url, 8).unwrap();
    let running = spawn_signalled(store, roomy(), system_clock(), &signals);
    publish_many(&c, "u", 20).await;
    rx.wait_for(20, WAIT).await;
    let stopped = std::time::Instant::now();
    cluster.stop().await;
    // More failed writes than the completer used to make before it dropped
    // the outcomes it held (8 tries, about 6 s).
    signalled(&signals, "nine failed writes", |s| s.write_failures >= 9).await;
    assert!(
        stopped.elapsed() < roomy().lease(),
        "still within the lease"
    );
    cluster.start().await;
    let c = connect(&url).await;
    signalled(&signals, "every outcome recorded", |s| s.completed >= 20).await;
    running.shutdown().await;
    assert_eq!(successes(&c, hook).await, 20);
    assert_eq!(rx.count(), 20, "no delivery was sent twice");
    let attempts = c
        .query(
            "SELECT d.attempts, a.response_code FROM postbox.deliveries d
             JOIN postbox.delivery_attempts a ON a.delivery_id = d.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(attempts.len(), 20, "one attempt row per delivery");
    assert!(attempts
        .iter()
        .all(|r| r.get::<_, i32>(0) == 1 && r.get::<_, Option<i32>>(1) == Some(200)));
}

#[tokio::test]
async fn outcomes_queued_at_the_shutdown_deadline_are_written_once_the_database_returns() {
    let mut cluster = Cluster::new(&[]).await;
    let url = cluster.migrated_db("postbox").await;
    let c = connect(&url).await;
    let rx = slow_receiver(Duration::from_secs(1)).await;
    let (hook, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let signals = TestSignals::new();
    let config = DispatchConfig {
        shutdown_timeout: Duration::from_secs(3),
        ..roomy()
    };
    let running = spawn_signalled(
        Store::connect(&url, 8).unwrap(),
        config,
        system_clock(),
        &signals,
    );
    publish_many(&c, "u", 5).await;
    rx.wait_for(5, WAIT).await;
    cluster.stop().await;
    running.stop.cancel();
    signalled(&signals, "nine failed writes", |s| s.write_failures >= 9).await;
    assert!(!running.handle.is_finished(), "still holding its outcomes");
    cluster.start().await;
    tokio::time::timeout(WAIT, running.handle)
        .await
        .expect("stops once its outcomes are written")
        .unwrap();
    let c = connect(&url).await;
    assert_eq!(successes(&c, hook).await, 5);
    assert_eq!(rx.count(), 5);
}

fn limits() -> ClaimLimits<'static> {
    ClaimLimits {
        limit: 10,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 10,
    }
}

fn success(id: uuid::Uuid, attempt: i32) -> Completion {
    Completion {
        delivery_id: id,
        webhook_id: uuid::Uuid::nil(),
        attempt,
        status: DeliveryStatus::Success,
        next_attempt_at: None,
        response_code: Some(200),
        response_body: Some("ok".into()),
        error_message: None,
        started_at: Utc::now(),
        duration_ms: 5,
        throttle_until: None,
        endpoint_ok: None,
        ordering_key: None,
        leave_line: false,
    }
}

#[tokio::test]
async fn a_late_outcome_for_a_rescued_delivery_not_claimed_again_still_counts() {
    let db = TestDb::new().await;
    let c = db.client().await;
    NewWebhook::new("u", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    publish(&c, "user.created", json!({}), "u").await;
    let store = db.store();
    let now = Utc::now();
    let claimed = store
        .event_fanout_many(10, now, limits())
        .await
        .unwrap()
        .claimed;
    let later = now + chrono::Duration::seconds(61);
    assert_eq!(store.delivery_rescue_expired(later, 10).await.unwrap(), 1);
    let report = store
        .delivery_complete_many(&[success(claimed[0].id, 1)], later)
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
    let row = c
        .query_one(
            "SELECT status, attempts, lease_expires_at IS NULL, response_code FROM postbox.deliveries",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, DeliveryStatus>(0), DeliveryStatus::Success);
    assert_eq!(row.get::<_, i32>(1), 1);
    assert!(row.get::<_, bool>(2), "the rescued marker is gone");
    assert_eq!(row.get::<_, Option<i32>>(3), Some(200));
    let audit = c
        .query(
            "SELECT response_code, error_message FROM postbox.delivery_attempts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].get::<_, Option<i32>>(0), Some(200));
    assert_eq!(
        audit[0].get::<_, Option<String>>(1),
        None,
        "the real answer replaced the lease-expired row"
    );
    // Nothing left to send.
    let clock = ShiftedClock::default();
    clock.advance(chrono::Duration::seconds(120));
    let d = Dispatcher::new(store, dispatch_config(), Arc::new(clock)).unwrap();
    assert_eq!(d.run_once().await.unwrap().attempts, 0);
}

#[tokio::test]
async fn a_test_send_cut_short_by_a_crash_is_a_dead_letter_not_a_retry() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = NewWebhook::new("u", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    let store = db.store();
    let now = Utc::now();
    let test = store
        .delivery_test_create(
            hook,
            "u",
            &json!({"message": "test"}),
            now,
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .expect("the owner's webhook");
    // The process dies mid-test; a dispatcher rescues the lease later.
    let clock = ShiftedClock::default();
    clock.advance(chrono::Duration::seconds(61));
    let d = Dispatcher::new(store.clone(), dispatch_config(), Arc::new(clock.clone())).unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!((report.rescued, report.attempts), (1, 0));
    let row = c
        .query_one(
            "SELECT status, completed_at IS NOT NULL, error_message FROM postbox.deliveries",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, DeliveryStatus>(0), DeliveryStatus::Failed);
    assert!(row.get::<_, bool>(1));
    assert!(row.get::<_, String>(2).contains("test is not retried"));
    clock.advance(chrono::Duration::days(2));
    assert_eq!(d.run_once().await.unwrap().attempts, 0, "never retried");
    // Its real outcome, if it comes after all, still counts.
    let late = store
        .delivery_complete_many(&[success(test.id, 1)], Utc::now())
        .await
        .unwrap();
    assert_eq!(late.applied, 1);
}

#[tokio::test]
async fn a_locked_row_holds_up_no_other_outcome_and_no_claim() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut holder = db.client().await;
    let rx = slow_receiver(Duration::from_secs(2)).await;
    let (x, _) = NewWebhook::new("x", rx.url(), &["*"]).insert(&c).await;
    let (y, _) = NewWebhook::new("y", rx.url(), &["*"]).insert(&c).await;
    let signals = TestSignals::new();
    // Few slots and a small channel: a stalled completer would stop claiming.
    let config = DispatchConfig {
        concurrency: 4,
        endpoint_concurrency: 4,
        ..dispatch_config()
    };
    let running = spawn_signalled(db.store(), config, system_clock(), &signals);
    publish_many(&c, "x", 1).await;
    publish_many(&c, "y", 3).await;
    rx.wait_for(4, WAIT).await;
    let tx = holder.transaction().await.unwrap();
    let held = tx
        .query(
            "SELECT id FROM postbox.deliveries WHERE webhook_id = $1 AND status = 'sending' FOR UPDATE",
            &[&x],
        )
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "X's delivery is in flight and now locked");
    // Y's outcomes are written at once, and Y's later events keep flowing.
    publish_many(&c, "y", 20).await;
    // X's outcome is skipped while its row is locked, never recorded: 23
    // recorded outcomes are Y's.
    signalled(
        &signals,
        "Y's 23 deliveries recorded while X's row is locked",
        |s| s.completed >= 23,
    )
    .await;
    assert_eq!(successes(&c, y).await, 23);
    assert!(
        signals.seen().skipped >= 1,
        "X's outcome was skipped, not waited for"
    );
    assert_eq!(successes(&c, x).await, 0);
    tx.commit().await.unwrap();
    signalled(
        &signals,
        "X's outcome recorded once the lock is gone",
        |s| s.completed >= 24,
    )
    .await;
    assert_eq!(successes(&c, x).await, 1);
    running.shutdown().await;
    assert_eq!(rx.count(), 24, "nothing sent twice");
    assert_eq!(signals.seen().write_failures, 0);
}

#[tokio::test]
async fn a_webhook_delete_racing_its_completions_never_fails() {
    let api = Api::start().await;
    let c = api.db.client().await;
    // Answers spread over a second, so completions run while the DELETE does.
    let rx = Receiver::start(Arc::new(|n| Answer {
        delay: Duration::from_millis(300 + 25 * (n as u64 % 40)),
        ..Answer::status(200)
    }))
    .await;
    let doomed = api
        .create(
            "x",
            json!({"name": "doomed", "url": rx.url(), "events": ["*"]}),
        )
        .await;
    let (y, _) = NewWebhook::new("x", rx.url(), &["*"]).insert(&c).await;
    let signals = TestSignals::new();
    let running = spawn_signalled(api.db.store(), roomy(), system_clock(), &signals);
    // First a DELETE held open by another transaction: the completer skips
    // the rows it has locked instead of waiting (so no lock cycle can form).
    let mut holder = api.db.client().await;
    publish_many(&c, "x", 8).await;
    rx.wait_for(16, WAIT).await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "DELETE FROM postbox.webhooks WHERE id = $1",
        &[&doomed["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()],
    )
    .await
    .unwrap();
    // A count of outcomes cannot tell whose they are (the doomed webhook's
    // may be written before the DELETE locks them): ask the table.
    wait_until("the other webhook's outcomes recorded", WAIT, || async {
        successes(&c, y).await == 8
    })
    .await;
    tx.rollback().await.unwrap();
    // Then the API's DELETE while 16 answers of the webhook arrive.
    let before = rx.count();
    publish_many(&c, "x", 16).await;
    rx.wait_for(before + 32, WAIT).await;
    let id = doomed["id"].as_str().unwrap();
    let (status, body) = api
        .call(
            "DELETE",
            &format!("/api/webhooks/{id}"),
            Some(&api.token("x")),
            None,
        )
        .await;
    assert!(
        status == 200 || status == 204,
        "DELETE answered {status}: {body}"
    );
    // Every outcome is recorded or found superseded by the delete once: 48
    // in all (the doomed webhook's 24 and the other's 24).
    signalled(&signals, "every outcome recorded or superseded", |s| {
        s.completed >= 48
    })
    .await;
    assert_eq!(successes(&c, y).await, 24);
    running.shutdown().await;
    assert_eq!(
        signals.seen().write_failures,
        0,
        "no write failed (no deadlock)"
    );
}

fn serve(url: &str) -> tokio::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"));
    cmd.env_remove("RUST_LOG")
        .args(["serve", "--no-api", "--no-maintenance"])
        .env("DATABASE_URL", url)
        .env("POSTBOX_ALLOW_PRIVATE_TARGETS", "true")
        .env("POSTBOX_REQUEST_TIMEOUT", "2s")
        .env("POSTBOX_POLL_INTERVAL", "200ms")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn kill(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// docs/OPERATIONS.md: a process killed without warning loses nothing; its
/// claims come back when their lease expires and another process sends them
/// again (at least once), not before.
#[tokio::test]
async fn sigkill_mid_flight_loses_nothing_and_resends_only_after_the_lease() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // The first process's requests hang; the second's are answered at once.
    let rx = Receiver::start(Arc::new(|n| Answer {
        delay: if n < 10 {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        },
        ..Answer::status(200)
    }))
    .await;
    let (hook, _) = NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let mut first = serve(&db.url);
    publish_many(&c, "u", 10).await;
    let sent = rx.wait_for(10, WAIT).await;
    kill(&first, "-KILL");
    first.wait().await.unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'sending'"
        )
        .await,
        10,
        "killed mid-flight: every delivery still claimed, none lost"
    );
    let mut second = serve(&db.url);
    // Lease: two request timeouts plus 30 s (DispatchConfig::lease).
    let lease = Duration::from_secs(2 * 2 + 30);
    let resent = rx.wait_for(20, lease + WAIT).await;
    wait_until("every delivery recorded", WAIT, || async {
        successes(&c, hook).await == 10
    })
    .await;
    kill(&second, "-TERM");
    second.wait().await.unwrap();
    let first_sent = sent.iter().map(|r| r.at).max().unwrap();
    for r in &resent[10..] {
        assert_eq!(r.header("x-webhook-attempt"), "2");
        assert!(
            r.at.duration_since(first_sent) >= lease - Duration::from_secs(1),
            "sent again only after the lease"
        );
    }
    assert_eq!(rx.count(), 20, "each delivery sent exactly twice");
    let lost = c
        .query(
            "SELECT count(*) FROM postbox.delivery_attempts WHERE attempt = 1 AND error_message LIKE 'lease expired%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        lost[0].get::<_, i64>(0),
        10,
        "the lost attempts are on record"
    );
}

#[tokio::test]
async fn a_dispatcher_whose_host_clock_runs_ahead_does_not_expire_live_claims() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = slow_receiver(Duration::from_secs(8)).await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;
    let live = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    publish(&c, "user.created", json!({}), "u").await;
    rx.wait_for(1, WAIT).await;
    // Another host, its clock 45 s ahead: more than the lease's 30 s margin.
    let ahead = ShiftedClock::default();
    ahead.advance(chrono::Duration::seconds(45));
    let host: postbox::clock::SharedClock = Arc::new(SkewedHostClock(ahead.clone()));
    let store = db.store();
    let (clock, _) = postbox::app::database_clock(&store, host).await;
    let skew = (clock.now() - Utc::now()).num_milliseconds();
    assert!(
        skew.abs() < 1000,
        "keeps the database's time: {skew} ms off"
    );
    let other = Dispatcher::new(store.clone(), dispatch_config(), clock).unwrap();
    assert_eq!(
        other.run_once().await.unwrap().rescued,
        0,
        "the claim is live"
    );
    // The same host on its own clock would have re-sent it.
    let own = Dispatcher::new(store, dispatch_config(), Arc::new(ahead)).unwrap();
    assert_eq!(own.run_once().await.unwrap().rescued, 1);
    live.shutdown().await;
}
