//! Scale of history: the delivery counters stay exact under a concurrent
//! mixed workload, and every API, metrics and maintenance statement stays on
//! an index (no sequential scan of deliveries, events or attempts) on a
//! database shaped like production: one webhook with most of the history,
//! many dead letters, one slow endpoint's backlog.
//!
//! The plan test runs at CI size (110,000 deliveries, seconds). The 1.1 M
//! run recorded in docs/PERFORMANCE.md is the same test with a factor:
//! `POSTBOX_SCALE_FACTOR=10 cargo test --test it scale::history_reads -- --nocapture`
//! It prints each statement's best time and its EXPLAIN (ANALYZE, BUFFERS);
//! it asserts the plans only, never a time.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use postbox::config::MaintenanceConfig;
use postbox::maintenance::run_once_at;
use postbox::store::{ClaimLimits, Completion, DeliveryStatus, Retention, Store};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

macro_rules! sql_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/", $name, ".sql")),
        )
    };
}

// ---------------------------------------------------------------- exactness

/// Every count a reader can see, from the counters and from count(*).
async fn assert_counters_exact(c: &tokio_postgres::Client, store: &Store, owner: &str) {
    // Per webhook and status, the truth.
    let truth = c
        .query(
            "SELECT w.id, s.status::text,
                    (SELECT count(*) FROM postbox.deliveries d WHERE d.webhook_id = w.id AND d.status = s.status)
             FROM postbox.webhooks w CROSS JOIN unnest(enum_range(NULL::postbox.delivery_status)) AS s(status)
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = truth.iter().map(|r| r.get(0)).collect();
    ids.dedup();
    for id in &ids {
        let of = |status: &str| -> i64 {
            truth
                .iter()
                .find(|r| r.get::<_, Uuid>(0) == *id && r.get::<_, String>(1) == status)
                .map(|r| r.get(2))
                .unwrap()
        };
        let view = c
            .query_one(
                "SELECT total, success, failed, pending, retrying FROM postbox.webhook_stats WHERE webhook_id = $1",
                &[id],
            )
            .await
            .unwrap();
        let total: i64 = ["pending", "sending", "success", "failed", "retrying"]
            .iter()
            .map(|s| of(s))
            .sum();
        assert_eq!(
            (
                view.get::<_, i64>(0),
                view.get::<_, i64>(1),
                view.get::<_, i64>(2),
                view.get::<_, i64>(3),
                view.get::<_, i64>(4)
            ),
            (
                total,
                of("success"),
                of("failed"),
                of("pending") + of("sending"),
                of("retrying")
            ),
            "webhook_stats of {id}"
        );
        // The history totals, with and without a status filter.
        let (_, all) = store
            .delivery_list_by_webhook(*id, owner, None, 1, 0)
            .await
            .unwrap();
        assert_eq!(all, total, "history total of {id}");
        for status in DeliveryStatus::ALL {
            let (_, n) = store
                .delivery_list_by_webhook(*id, owner, Some(status), 1, 0)
                .await
                .unwrap();
            assert_eq!(n, of(status.as_str()), "history total of {id}, {status:?}");
        }
    }
    let all = |sql: &'static str| async move { count(c, sql).await };
    let pending = all("SELECT count(*) FROM postbox.deliveries WHERE status = 'pending'").await;
    let retrying = all("SELECT count(*) FROM postbox.deliveries WHERE status = 'retrying'").await;
    let sending = all("SELECT count(*) FROM postbox.deliveries WHERE status = 'sending'").await;
    let success = all("SELECT count(*) FROM postbox.deliveries WHERE status = 'success'").await;
    let failed = all("SELECT count(*) FROM postbox.deliveries WHERE status = 'failed'").await;
    let due = all(
        "SELECT count(*) FROM postbox.deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()",
    )
    .await;
    let q = store.queue_stats().await.unwrap();
    assert_eq!(
        (
            q.waiting + q.paused,
            q.active,
            q.completed,
            q.failed,
            q.delayed
        ),
        (due, sending, success, failed, pending + retrying - due),
        "queue stats"
    );
    let depth = store.delivery_queue_depth(Utc::now()).await.unwrap();
    assert_eq!(
        (
            depth.pending,
            depth.retrying,
            depth.sending,
            depth.failed,
            depth.success_estimate
        ),
        (pending, retrying, sending, failed, Some(success)),
        "metrics queue depth"
    );
}

/// One dispatcher's work, without HTTP: fan out, claim, and record mixed
/// outcomes (a third succeed, a third retry at once, a third fail for good).
async fn dispatcher_rounds(store: Store, rounds: usize, seed: usize) {
    let limits = ClaimLimits {
        limit: 64,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(300),
        per_webhook: 64,
    };
    for round in 0..rounds {
        let now = Utc::now();
        let mut claimed = store
            .event_fanout_many(50, now, limits)
            .await
            .unwrap()
            .claimed;
        claimed.extend(store.delivery_claim(now, limits).await.unwrap());
        let outcomes: Vec<Completion> = claimed
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let status = match (i + round + seed) % 3 {
                    0 => DeliveryStatus::Success,
                    1 => DeliveryStatus::Retrying,
                    _ => DeliveryStatus::Failed,
                };
                Completion {
                    delivery_id: d.id,
                    webhook_id: d.webhook_id,
                    attempt: d.attempt,
                    status,
                    next_attempt_at: (status == DeliveryStatus::Retrying)
                        .then(|| now - TimeDelta::seconds(1)),
                    response_code: Some(if status == DeliveryStatus::Success {
                        200
                    } else {
                        500
                    }),
                    response_body: None,
                    error_message: None,
                    started_at: now,
                    duration_ms: 5,
                    throttle_until: None,
                    endpoint_ok: None,
                    ordering_key: None,
                    leave_line: false,
                }
            })
            .collect();
        store
            .delivery_complete_many(&outcomes, Utc::now())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn counters_equal_count_star_after_a_concurrent_mixed_workload() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let owner = "user_scale";
    let mut hooks = Vec::new();
    for i in 0..4 {
        // The last one, deleted mid-run, takes no new events: a fan-out or an
        // outcome racing a webhook DELETE is another matter (the foreign key
        // and the lock order), not the counters'.
        let events: &[&str] = if i < 3 { &["*"] } else { &["user.*"] };
        let (id, _) = NewWebhook::new(owner, format!("http://127.0.0.1:9/h{i}"), events)
            .insert(&c)
            .await;
        hooks.push(id);
    }
    // The deleted webhook's history, in every status.
    c.execute(
        "INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, completed_at)
         SELECT $1, gen_random_uuid(), 'user.created',
                (enum_range(NULL::postbox.delivery_status))[1 + g % 5], 1, now()
         FROM generate_series(1, 200) g",
        &[&hooks[3]],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO postbox.events (event_type, owner_id, payload)
         SELECT 'project.updated', $1, jsonb_build_object('i', g) FROM generate_series(1, 1500) g",
        &[&owner],
    )
    .await
    .unwrap();

    // Two dispatchers, and beside them everything else that changes rows:
    // rollups, retention batches, requeues, rescues, manual SQL, a webhook
    // DELETE cascading over its history.
    let a = tokio::spawn(dispatcher_rounds(db.store(), 40, 0));
    let b = tokio::spawn(dispatcher_rounds(db.store(), 40, 1));
    let store = db.store();
    let other = db.client().await;
    for step in 0..20 {
        store.delivery_count_rollup().await.unwrap();
        for (kind, batch) in [(Retention::Success, 7), (Retention::Failed, 5)] {
            let cutoff = Utc::now() + TimeDelta::seconds(1);
            store
                .retention_delete_many(kind, None, cutoff, cutoff, batch)
                .await
                .unwrap();
        }
        if step % 4 == 0 {
            store.delivery_retry_failed_many(None).await.unwrap();
        }
        store
            .delivery_rescue_expired(Utc::now() + TimeDelta::hours(1), 3)
            .await
            .unwrap();
        other
            .batch_execute(
                "UPDATE postbox.deliveries SET status = 'failed', completed_at = now(), attempts = attempts + 1
                 WHERE id IN (SELECT id FROM postbox.deliveries WHERE status = 'pending' LIMIT 5 FOR UPDATE SKIP LOCKED);
                 DELETE FROM postbox.deliveries
                 WHERE id IN (SELECT id FROM postbox.deliveries WHERE status = 'retrying' LIMIT 3 FOR UPDATE SKIP LOCKED);
                 INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, completed_at)
                 SELECT webhook_id, gen_random_uuid(), 'project.updated', 'success', 1, now()
                 FROM postbox.deliveries LIMIT 4;",
            )
            .await
            .unwrap();
        if step == 10 {
            assert!(store.webhook_delete(hooks[3], owner).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.await.unwrap();
    b.await.unwrap();

    assert!(
        count(&c, "SELECT count(*) FROM postbox.delivery_count_deltas").await > 0,
        "the readers must sum pending deltas, not only rolled-up counts"
    );
    assert_counters_exact(&c, &store, owner).await;
    store.delivery_count_rollup().await.unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.delivery_count_deltas").await,
        0
    );
    assert_eq!(
        count(
            &c,
            "SELECT (SELECT count(*) FROM postbox.delivery_counts WHERE webhook_id NOT IN (SELECT id FROM postbox.webhooks))
                  + (SELECT count(*) FROM postbox.webhook_activity WHERE webhook_id NOT IN (SELECT id FROM postbox.webhooks))"
        )
        .await,
        0,
        "the deleted webhook's counters are dropped"
    );
    assert_counters_exact(&c, &store, owner).await;
}

#[tokio::test]
async fn every_page_of_a_history_is_exact_from_either_end_of_its_hour() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (w, _) = NewWebhook::new("user_pages", "http://127.0.0.1:9/h".into(), &["*"])
        .insert(&c)
        .await;
    // 45 deliveries over about three hours, four at a time sharing a
    // created_at (ties break on id), one on an hour's first instant.
    c.execute(
        "INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, created_at, completed_at)
         SELECT $1, gen_random_uuid(), 'project.updated',
                CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'success' END::postbox.delivery_status, 1,
                CASE WHEN g = 45 THEN date_trunc('hour', now() - interval '2 hours')
                     ELSE now() - (g / 4) * interval '17 minutes' END,
                now()
         FROM generate_series(1, 45) g",
        &[&w],
    )
    .await
    .unwrap();
    let store = db.store();
    // Once from the deltas alone, once from the rolled-up hour counts.
    for rolled_up in [false, true] {
        if rolled_up {
            store.delivery_count_rollup().await.unwrap();
        }
        pages_match(&c, &store, w).await;
    }
    // Another owner sees nothing, whatever the page.
    let (page, total) = store
        .delivery_list_by_webhook(w, "someone_else", None, 20, 40)
        .await
        .unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 0);
}

/// Pages of every size, read to the end, equal the ordered rows.
async fn pages_match(c: &tokio_postgres::Client, store: &Store, w: Uuid) {
    for status in [
        None,
        Some(DeliveryStatus::Failed),
        Some(DeliveryStatus::Success),
    ] {
        let expected: Vec<Uuid> = c
            .query(
                "SELECT id FROM postbox.deliveries WHERE webhook_id = $1
                   AND ($2::postbox.delivery_status IS NULL OR status = $2)
                 ORDER BY created_at DESC, id DESC",
                &[&w, &status],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Every page, from both halves, and past the end.
        for limit in [1_i64, 3, 7, 20] {
            let mut seen = Vec::new();
            let mut offset = 0;
            loop {
                let (page, total) = store
                    .delivery_list_by_webhook(w, "user_pages", status, limit, offset)
                    .await
                    .unwrap();
                assert_eq!(total, expected.len() as i64);
                if page.is_empty() {
                    break;
                }
                seen.extend(page.iter().map(|d| d.id));
                offset += limit;
            }
            assert_eq!(seen, expected, "limit {limit}, status {status:?}");
        }
    }
}

// -------------------------------------------------------------------- plans

/// The target's shape at `f` x 110,000 deliveries: webhook 0 holds 60 % of
/// them (half successes, half dead letters), ten others share 40 % (3:1),
/// webhook 11 is a slow endpoint with a due backlog of 10 %. One event and
/// (finished rows) one attempt per delivery, spread over six days.
pub(crate) const FILL: &str = "
ALTER TABLE postbox.events DISABLE TRIGGER events_before_insert;
INSERT INTO postbox.webhooks (id, owner_id, url, event_types, created_at, updated_at)
SELECT ('00000000-0000-0000-0000-0000000000' || lpad(g::text, 2, '0'))::uuid, 'owner_' || g,
       'http://127.0.0.1:9/h' || g, ARRAY['*'], now() - interval '30 days', now() - interval '30 days'
FROM generate_series(0, 11) g;
CREATE TEMP TABLE plan AS
SELECT g, CASE WHEN g <= 60000 * f THEN 0 WHEN g <= 100000 * f THEN 1 + (g % 10) ELSE 11 END AS w,
       CASE WHEN g <= 30000 * f THEN 'success' WHEN g <= 60000 * f THEN 'failed'
            WHEN g <= 90000 * f THEN 'success' WHEN g <= 100000 * f THEN 'failed'
            ELSE 'pending' END::postbox.delivery_status AS st,
       now() - interval '6 days' + (g * interval '6 days' / (110000 * f)) AS t
FROM (SELECT current_setting('postbox.scale_factor')::int AS f) p, generate_series(1, 110000 * p.f) g;
INSERT INTO postbox.events (id, event_type, owner_id, payload, created_at, fanout_pending)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'project.updated', 'owner_' || w, '{\"id\": 1}', t, false
FROM plan;
INSERT INTO postbox.deliveries (id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,
                                created_at, updated_at, completed_at, response_code)
SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,
       ('00000000-0000-0000-0000-0000000000' || lpad(w::text, 2, '0'))::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'project.updated', st,
       CASE WHEN st = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN st = 'pending' THEN now() - interval '1 minute' ELSE t END,
       t, t + interval '1 second', CASE WHEN st IN ('success', 'failed') THEN t + interval '1 second' END,
       CASE st WHEN 'success' THEN 200 WHEN 'failed' THEN 500 END
FROM plan;
INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, response_code)
SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, 1, t, 20 + g % 50,
       CASE st WHEN 'success' THEN 200 ELSE 500 END
FROM plan WHERE st <> 'pending';
ALTER TABLE postbox.events ENABLE TRIGGER events_before_insert;
";

const BIG: &str = "'00000000-0000-0000-0000-000000000000'";

/// Prepares `sql`, runs it three times with `args` inside a transaction that
/// is rolled back (the writes change nothing), and returns the best time and
/// the EXPLAIN (ANALYZE, BUFFERS) text of a fourth run.
async fn measure(c: &tokio_postgres::Client, sql: &str, args: &str) -> (Duration, String) {
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute(&format!("PREPARE q AS {sql}"))
        .await
        .unwrap();
    let execute = if args.is_empty() {
        "EXECUTE q".to_string()
    } else {
        format!("EXECUTE q({args})")
    };
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        c.batch_execute(&execute).await.unwrap();
        best = best.min(started.elapsed());
    }
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {execute}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.batch_execute("ROLLBACK; DEALLOCATE q").await.unwrap();
    (best, plan.join("\n"))
}

/// Runs each statement of `cases` with its arguments in custom and generic
/// plans, prints the best time and plan of each, and fails on any
/// sequential scan of deliveries, events or attempts.
pub(crate) async fn assert_on_indexes(
    c: &tokio_postgres::Client,
    cases: &[((&str, &str), String)],
) {
    let mut scans = Vec::new();
    for mode in ["auto", "force_generic_plan"] {
        c.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        for ((name, sql), args) in cases {
            let (best, plan) = measure(c, sql, args).await;
            if mode == "auto" {
                println!(
                    "=== {name}({args}): best of 3 {:.2} ms\n{plan}\n",
                    best.as_secs_f64() * 1e3
                );
            }
            for table in ["deliveries", "events", "delivery_attempts"] {
                if plan.contains(&format!("Seq Scan on {table}")) {
                    scans.push(format!("{name}({args}) [{mode}] scans {table}:\n{plan}"));
                }
            }
        }
    }
    assert!(
        scans.is_empty(),
        "sequential scans of history:\n{}",
        scans.join("\n\n")
    );
    c.batch_execute("SET plan_cache_mode = auto").await.unwrap();
}

#[tokio::test]
async fn history_reads_and_maintenance_stay_on_indexes() {
    let factor: i32 = std::env::var("POSTBOX_SCALE_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let db = TestDb::new().await;
    let c = db.client().await;
    let started = Instant::now();
    c.batch_execute(&format!("SET postbox.scale_factor = {factor}; {FILL}"))
        .await
        .unwrap();
    // The migration's counters start from the rows; the fill wrote through
    // the triggers, so fold them as maintenance would, then let autovacuum's
    // work happen now.
    db.store().delivery_count_rollup().await.unwrap();
    c.batch_execute("VACUUM ANALYZE").await.unwrap();
    let rows = count(&c, "SELECT count(*) FROM postbox.deliveries").await;
    println!(
        "filled {rows} deliveries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Steady state: event retention has looked at everything up to a minute
    // before the cutoff (a first run after the upgrade walks them all once).
    c.batch_execute(
        "UPDATE postbox.retention_state SET events_checked_until = now() - interval '1 day 1 minute'",
    )
    .await
    .unwrap();
    let big_total = 60_000 * factor as i64;
    let middle = big_total / 2;
    let last = big_total - 20;
    let cases: Vec<((&str, &str), String)> = vec![
        (sql_file!("webhook_stats_get"), format!("{BIG}, 'owner_0'")),
        (
            sql_file!("delivery_count_by_webhook"),
            format!("{BIG}, 'owner_0', NULL"),
        ),
        (
            sql_file!("delivery_list_by_webhook"),
            format!("{BIG}, 'owner_0', NULL, 20, 0"),
        ),
        (
            sql_file!("delivery_list_by_webhook"),
            format!("{BIG}, 'owner_0', NULL, 20, {}", middle - 20),
        ),
        (
            sql_file!("delivery_list_by_webhook"),
            format!("{BIG}, 'owner_0', NULL, 20, {middle}"),
        ),
        (
            sql_file!("delivery_list_by_webhook"),
            format!("{BIG}, 'owner_0', NULL, 20, {last}"),
        ),
        (
            sql_file!("delivery_list_by_webhook"),
            format!("{BIG}, 'owner_0', 'failed', 20, {}", middle / 2),
        ),
        (sql_file!("queue_stats"), String::new()),
        (sql_file!("delivery_queue_depth"), "now()".into()),
        (sql_file!("delivery_next_due"), String::new()),
        (
            sql_file!("delivery_claim"),
            "128, now(), '{}'::uuid[], 60, 32, '{}'::bigint[]".into(),
        ),
        (
            sql_file!("webhook_disable_failing"),
            "now(), now() - interval '5 days', 'test'".into(),
        ),
        (sql_file!("delivery_count_rollup"), String::new()),
        (
            sql_file!("delivery_delete_success_many"),
            "'-infinity', now() - interval '1 day', 5000, now() - interval '1 day'".into(),
        ),
        (
            sql_file!("delivery_delete_failed_many"),
            "'-infinity', now() - interval '7 days', 5000, now() - interval '1 day'".into(),
        ),
        (
            sql_file!("event_delete_unneeded_many"),
            "'-infinity', now() - interval '1 day', 5000".into(),
        ),
    ];
    assert_on_indexes(&c, &cases).await;

    // A maintenance run with little to delete (the windows moved past
    // everything once), as `postbox maintain` runs it.
    let config = MaintenanceConfig {
        retention_success: Duration::from_secs(7 * 86400),
        retention_failed: Duration::from_secs(8 * 86400),
        ..MaintenanceConfig::default()
    };
    let store = db.store();
    for run in ["first", "second"] {
        let started = Instant::now();
        let report = run_once_at(&store, &config, Utc::now(), &CancellationToken::new())
            .await
            .unwrap();
        println!(
            "maintenance run ({run}, little to delete): {:.1} ms, {report:?}",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}
