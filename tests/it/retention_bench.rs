//! A quick measurement, not a test of behaviour (ignored by default): how much
//! does a retention run deleting many finished rows slow the dispatcher down?
//! `cargo test --test it -- --ignored retention_bench --nocapture`
//! Sizes: POSTBOX_RB_OLD (200000 finished deliveries), POSTBOX_RB_EVENTS (20000).

use std::time::{Duration, Instant};

use chrono::Utc;
use postbox::config::MaintenanceConfig;
use postbox::maintenance::run_once_at;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn publish_batch(db: &TestDb, c: &tokio_postgres::Client, events: i64) {
    // Spread over ten owners with one endpoint each: the per-endpoint
    // in-flight cap would otherwise bound the drain.
    c.execute(
        "INSERT INTO postbox.events (event_type, owner_id, payload)
         SELECT 'project.updated', 'user_' || (g % 10), jsonb_build_object('i', g)
         FROM generate_series(1, $1::int) g",
        &[&(events as i32)],
    )
    .await
    .unwrap();
    // Fan out up front and refresh the statistics, so that every phase
    // measures claim/send/complete with the planner seeing the backlog (with
    // statistics from an empty queue the claim's plan degrades badly: see
    // the report).
    // Fan-out claims what it can; a claim of 0 leaves every delivery queued.
    let limits = postbox::store::ClaimLimits {
        limit: 0,
        busy_webhooks: &[],
        busy_room: &[],
        lease: std::time::Duration::from_secs(60),
        per_webhook: 0,
    };
    db.store()
        .event_fanout_many(events, Utc::now(), limits)
        .await
        .unwrap();
    c.batch_execute("ANALYZE postbox.deliveries").await.unwrap();
}

async fn wait_drained(c: &tokio_postgres::Client) {
    // Done when nothing waits for fan-out or delivery: small partial-index reads.
    wait_until("the drain finishes", Duration::from_secs(900), || async {
        count(
            c,
            "SELECT (SELECT count(*) FROM postbox.events WHERE fanout_pending)
                  + (SELECT count(*) FROM postbox.deliveries WHERE status IN ('pending', 'retrying'))
                  + (SELECT count(*) FROM postbox.deliveries WHERE status = 'sending')",
        )
        .await
            == 0
    })
    .await;
}

async fn drain(db: &TestDb, c: &tokio_postgres::Client, events: i64) -> Duration {
    publish_batch(db, c, events).await;
    let started = Instant::now();
    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    wait_drained(c).await;
    let took = started.elapsed();
    running.shutdown().await;
    took
}

async fn delivered_since(c: &tokio_postgres::Client, since: chrono::DateTime<Utc>) -> i64 {
    c.query_one(
        "SELECT count(*) FROM postbox.deliveries WHERE status IN ('success', 'failed') AND completed_at > $1",
        &[&since],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
#[ignore]
async fn retention_bench() {
    let old = env_usize("POSTBOX_RB_OLD", 200_000) as i32;
    let events = env_usize("POSTBOX_RB_EVENTS", 20_000) as i64;
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    for i in 0..10 {
        let owner = format!("user_{i}");
        NewWebhook::new(&owner, rx.url(), &["*"]).insert(&c).await;
    }
    let (archive, _) = NewWebhook::new("old_owner", rx.url(), &["*"])
        .insert(&c)
        .await;

    let seeded = Instant::now();
    let now = Utc::now();
    c.execute(
        "INSERT INTO postbox.events (event_type, owner_id, payload, created_at, fanout_pending)
         SELECT 'project.updated', 'old_owner', jsonb_build_object('n', g),
                $1::timestamptz - interval '2 days' - make_interval(secs => g), false
         FROM generate_series(1, $2::int) g",
        &[&now, &old],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, created_at, updated_at, completed_at)
         SELECT $1, e.id, e.event_type, 'success', 1, e.created_at, e.created_at, e.created_at + interval '1 second'
         FROM postbox.events e WHERE e.owner_id = 'old_owner'",
        &[&archive],
    )
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, response_code)
         SELECT id, 1, completed_at, 15, 200 FROM postbox.deliveries",
    )
    .await
    .unwrap();
    for table in ["events", "deliveries", "delivery_attempts"] {
        // VACUUM refuses a multi-statement string: one statement each.
        c.batch_execute(&format!("VACUUM ANALYZE postbox.{table}"))
            .await
            .unwrap();
    }
    eprintln!(
        "seeded {old} finished deliveries (+ events, attempts) in {:?}",
        seeded.elapsed()
    );

    // 1. Drain without retention.
    let alone = drain(&db, &c, events).await;

    // 2. Drain while a retention run deletes the old rows; the rate that
    //    matters is the one while retention runs.
    publish_batch(&db, &c, events).await;
    let started = Instant::now();
    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    // Start retention once the dispatcher is sending, so the two overlap.
    let since = Utc::now();
    wait_until(
        "the dispatcher delivers",
        Duration::from_secs(60),
        || async { delivered_since(&c, since).await > 0 },
    )
    .await;
    let window_start = Utc::now();
    let retention_started = Instant::now();
    let report = run_once_at(
        &db.store(),
        &MaintenanceConfig::default(),
        Utc::now(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let retention_took = retention_started.elapsed();
    let during = delivered_since(&c, window_start).await;
    wait_drained(&c).await;
    let with_retention = started.elapsed();
    running.shutdown().await;

    // 3. Drain alone again (the tables are now smaller), as a control.
    let control = drain(&db, &c, events).await;

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    eprintln!(
        "drain alone:          {events} events in {alone:?} = {:.0}/s",
        rate(alone)
    );
    eprintln!(
        "drain with retention: {events} events in {with_retention:?} = {:.0}/s",
        rate(with_retention)
    );
    eprintln!(
        "drain alone again:    {events} events in {control:?} = {:.0}/s",
        rate(control)
    );
    eprintln!(
        "while retention ran:  {during} deliveries in {retention_took:?} = {:.0}/s",
        during as f64 / retention_took.as_secs_f64()
    );
    eprintln!(
        "retention: {} deliveries + {} events deleted in {retention_took:?} ({:.0} deliveries/s)",
        report.deleted_success,
        report.deleted_events,
        report.deleted_success as f64 / retention_took.as_secs_f64()
    );
    assert_eq!(report.deleted_success, old as i64);
}
