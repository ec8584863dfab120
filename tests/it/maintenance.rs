//! Maintenance: retention boundaries, batches, the maintenance lock, lease
//! rescue, auto-disable, and the operations surface (metrics, JSON logs,
//! `postbox maintain`, SIGTERM) against a real database and the real binary.

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use postbox::config::MaintenanceConfig;
use postbox::maintenance::{disable_reason, run_once_at};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A fixed instant, whole seconds, so boundaries are exact.
fn pinned_now() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn config() -> MaintenanceConfig {
    MaintenanceConfig::default()
}

async fn run(
    db: &TestDb,
    config: &MaintenanceConfig,
    now: DateTime<Utc>,
) -> postbox::maintenance::RunReport {
    run_once_at(&db.store(), config, now, &CancellationToken::new())
        .await
        .expect("maintenance run")
}

async fn webhook(c: &tokio_postgres::Client) -> Uuid {
    NewWebhook::new("user_7", "http://127.0.0.1:9/hook".into(), &["*"])
        .insert(c)
        .await
        .0
}

async fn event(
    c: &tokio_postgres::Client,
    created_at: DateTime<Utc>,
    fanout_pending: bool,
) -> Uuid {
    c.query_one(
        "INSERT INTO postbox.events (event_type, owner_id, payload, created_at, fanout_pending)
         VALUES ('project.updated', 'user_7', '{}', $1, $2) RETURNING id",
        &[&created_at, &fanout_pending],
    )
    .await
    .unwrap()
    .get(0)
}

/// A delivery of a fresh event (created a minute before its last attempt),
/// with one attempt per entry of `codes` (None: no response), the last one
/// starting at `last_attempt_at`, one minute apart.
async fn delivery(
    c: &tokio_postgres::Client,
    webhook_id: Uuid,
    status: &str,
    last_attempt_at: DateTime<Utc>,
    codes: &[Option<i32>],
) -> (Uuid, Uuid) {
    let n = codes.len() as i64;
    let first = last_attempt_at - TimeDelta::minutes(n);
    let event_id = event(c, first - TimeDelta::minutes(1), false).await;
    let finished = matches!(status, "success" | "failed");
    let completed_at = finished.then_some(last_attempt_at);
    let id: Uuid = c
        .query_one(
            "INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts,
                 next_attempt_at, created_at, updated_at, completed_at)
             VALUES ($1, $2, 'project.updated', $3::text::postbox.delivery_status, $4, $5, $6, $5, $7)
             RETURNING id",
            &[
                &webhook_id,
                &event_id,
                &status,
                &(n as i32),
                &(last_attempt_at + TimeDelta::minutes(5)),
                &(first - TimeDelta::minutes(1)),
                &completed_at,
            ],
        )
        .await
        .unwrap()
        .get(0);
    for (i, code) in codes.iter().enumerate() {
        let started = last_attempt_at - TimeDelta::minutes(n - 1 - i as i64);
        let error: Option<&str> = match code {
            Some(c) if (200..300).contains(c) => None,
            _ => Some("failed"),
        };
        c.execute(
            "INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, response_code, error_message)
             VALUES ($1, $2, $3, 12, $4, $5)",
            &[&id, &(i as i32 + 1), &started, code, &error],
        )
        .await
        .unwrap();
    }
    (event_id, id)
}

async fn exists(c: &tokio_postgres::Client, table: &str, id: Uuid) -> bool {
    let sql = match table {
        "deliveries" => "SELECT count(*) FROM postbox.deliveries WHERE id = $1",
        "attempts" => "SELECT count(*) FROM postbox.delivery_attempts WHERE delivery_id = $1",
        "events" => "SELECT count(*) FROM postbox.events WHERE id = $1",
        _ => unreachable!(),
    };
    let n: i64 = c.query_one(sql, &[&id]).await.unwrap().get(0);
    n > 0
}

#[tokio::test]
async fn retention_deletes_just_outside_and_keeps_just_inside_each_window() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let w = webhook(&c).await;
    let now = pinned_now();
    let day = secs(86400);
    let (_, success_out) = delivery(&c, w, "success", now - day - secs(1), &[Some(200)]).await;
    let (_, success_edge) = delivery(&c, w, "success", now - day, &[Some(200)]).await;
    let (_, success_in) = delivery(
        &c,
        w,
        "success",
        now - day + secs(1),
        &[Some(500), Some(200)],
    )
    .await;
    let (_, failed_out) =
        delivery(&c, w, "failed", now - day * 7 - secs(1), &[Some(500), None]).await;
    let (_, failed_in) = delivery(&c, w, "failed", now - day * 7 + secs(1), &[Some(500)]).await;
    let (_, failed_young) = delivery(&c, w, "failed", now - day * 2, &[Some(500)]).await;
    let (_, retrying_old) = delivery(&c, w, "retrying", now - day * 30, &[Some(500)]).await;

    let report = run(&db, &config(), now).await;
    assert!(report.ran);
    assert_eq!((report.deleted_success, report.deleted_failed), (1, 1));
    for gone in [success_out, failed_out] {
        assert!(!exists(&c, "deliveries", gone).await);
        assert!(
            !exists(&c, "attempts", gone).await,
            "attempts go with their delivery"
        );
    }
    for kept in [
        success_edge,
        success_in,
        failed_in,
        failed_young,
        retrying_old,
    ] {
        assert!(exists(&c, "deliveries", kept).await);
        assert!(exists(&c, "attempts", kept).await);
    }
}

#[tokio::test]
async fn events_are_removed_only_when_no_delivery_needs_them() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let w = webhook(&c).await;
    let now = pinned_now();
    let old = now - secs(86400) - secs(60);
    let no_delivery_old = event(&c, old, false).await;
    let no_delivery_young = event(&c, now - secs(3600), false).await;
    let fanout_pending_old = event(&c, old, true).await;
    // Its success is deleted by this run, so the event goes in the same run.
    let (success_event, _) = delivery(&c, w, "success", old + secs(30), &[Some(200)]).await;
    // Failed deliveries are kept 7 days, and so is their event.
    let (failed_event, _) = delivery(&c, w, "failed", old, &[Some(500)]).await;
    let (retrying_event, _) = delivery(&c, w, "retrying", old, &[Some(500)]).await;

    let report = run(&db, &config(), now).await;
    assert_eq!(report.deleted_events, 2);
    assert!(!exists(&c, "events", no_delivery_old).await);
    assert!(!exists(&c, "events", success_event).await);
    for kept in [
        no_delivery_young,
        fanout_pending_old,
        failed_event,
        retrying_event,
    ] {
        assert!(exists(&c, "events", kept).await);
    }
}

#[tokio::test]
async fn retention_works_in_batches_until_a_short_batch_even_with_equal_timestamps() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let w = webhook(&c).await;
    let now = pinned_now();
    let old = now - secs(3 * 86400);
    for i in 0..11 {
        // Groups of equal completed_at straddle the batch boundaries.
        delivery(&c, w, "success", old + secs(i / 4), &[Some(200)]).await;
    }
    let young = delivery(&c, w, "success", now - secs(60), &[Some(200)])
        .await
        .1;
    let cfg = MaintenanceConfig {
        batch_size: 3,
        ..config()
    };
    let report = run(&db, &cfg, now).await;
    assert_eq!(report.deleted_success, 11);
    assert_eq!(report.deleted_events, 11);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        1
    );
    assert!(exists(&c, "deliveries", young).await);
    // Retention remembers the newest success it removed, for auto-disable.
    let remembered: Option<DateTime<Utc>> = c
        .query_one(
            "SELECT last_success_at FROM postbox.webhooks WHERE id = $1",
            &[&w],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(remembered, Some(old + secs(10 / 4)));
}

#[tokio::test]
async fn only_one_maintainer_works_at_a_time() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let w = webhook(&c).await;
    let now = pinned_now();
    delivery(&c, w, "success", now - secs(2 * 86400), &[Some(200)]).await;
    let store = db.store();

    // Another instance is mid-run: this one skips and touches nothing.
    let other = store
        .lock_maintenance_try()
        .await
        .unwrap()
        .expect("lock is free");
    assert!(store.lock_maintenance_try().await.unwrap().is_none());
    let skipped = run(&db, &config(), now).await;
    assert!(!skipped.ran);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        1
    );
    other.release().await.unwrap();

    // Two at once: exactly one works.
    let cfg = config();
    let (a, b) = tokio::join!(run(&db, &cfg, now), run(&db, &cfg, now));
    assert!(a.ran || b.ran);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        0
    );

    // A run that dies without releasing (dropped guard) frees the lock too.
    let abandoned = store
        .lock_maintenance_try()
        .await
        .unwrap()
        .expect("lock is free");
    drop(abandoned);
    let store2 = store.clone();
    wait_until("the abandoned lock is released", WAIT, || {
        let s = store2.clone();
        async move {
            match s.lock_maintenance_try().await.unwrap() {
                Some(l) => {
                    l.release().await.unwrap();
                    true
                }
                None => false,
            }
        }
    })
    .await;
    assert_eq!(
        count(
            &c,
            // This database only: other tests' sessions (migrations, the
            // template) take advisory locks of their own at the same time.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        .await,
        0,
        "no session keeps the maintenance lock"
    );
}

#[tokio::test]
async fn maintenance_rescues_expired_leases() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let w = webhook(&c).await;
    let now = pinned_now();
    let (_, d) = delivery(&c, w, "sending", now - secs(600), &[]).await;
    c.execute(
        "UPDATE postbox.deliveries SET attempts = 1, lease_expires_at = $2 WHERE id = $1",
        &[&d, &(now - secs(1))],
    )
    .await
    .unwrap();
    let report = run(&db, &config(), now).await;
    assert_eq!(report.rescued, 1);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'retrying'"
        )
        .await,
        1
    );
}

/// A webhook whose rows were written `age` ago, so that the edit clock does not interfere.
async fn old_webhook(c: &tokio_postgres::Client, now: DateTime<Utc>) -> Uuid {
    let id = webhook(c).await;
    c.execute(
        "UPDATE postbox.webhooks SET created_at = $2, updated_at = $2 WHERE id = $1",
        &[&id, &(now - secs(30 * 86400))],
    )
    .await
    .unwrap();
    id
}

async fn active(
    c: &tokio_postgres::Client,
    id: Uuid,
) -> (bool, Option<String>, Option<DateTime<Utc>>) {
    let r = c
        .query_one(
            "SELECT active, disabled_reason, disabled_at FROM postbox.webhooks WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn auto_disable_turns_off_webhooks_failing_without_success_for_the_window() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let now = pinned_now();
    let window = secs(5 * 86400);
    let cutoff = now - window;

    // First failure just before the cutoff, still retrying now: disabled.
    let failing = old_webhook(&c, now).await;
    delivery(&c, failing, "failed", cutoff - secs(1), &[Some(500)]).await;
    delivery(&c, failing, "retrying", now - secs(60), &[None]).await;

    // First failure just after the cutoff: not yet.
    let young_failure = old_webhook(&c, now).await;
    delivery(
        &c,
        young_failure,
        "retrying",
        cutoff + secs(1),
        &[Some(500)],
    )
    .await;

    // Failing since long ago, but one success inside the window: kept.
    let recovered = old_webhook(&c, now).await;
    delivery(&c, recovered, "failed", cutoff - secs(3600), &[Some(500)]).await;
    delivery(
        &c,
        recovered,
        "success",
        now - secs(3600),
        &[Some(503), Some(200)],
    )
    .await;
    delivery(&c, recovered, "retrying", now - secs(60), &[Some(500)]).await;

    // Its success is gone (retention) but remembered in last_success_at: kept.
    let remembered = old_webhook(&c, now).await;
    delivery(&c, remembered, "failed", cutoff - secs(3600), &[Some(500)]).await;
    delivery(&c, remembered, "retrying", now - secs(60), &[Some(500)]).await;
    c.execute(
        "UPDATE postbox.webhooks SET last_success_at = $2 WHERE id = $1",
        &[&remembered, &(cutoff + secs(1))],
    )
    .await
    .unwrap();

    // A success before the cutoff, failures only after it: not yet.
    let success_then_failing = old_webhook(&c, now).await;
    delivery(
        &c,
        success_then_failing,
        "success",
        cutoff - secs(60),
        &[Some(200)],
    )
    .await;
    delivery(
        &c,
        success_then_failing,
        "retrying",
        cutoff + secs(60),
        &[Some(500), None],
    )
    .await;

    // Old failures, but nothing failing now (no retrying, no recent dead letter): kept.
    let quiet = old_webhook(&c, now).await;
    delivery(&c, quiet, "failed", cutoff - secs(86400), &[Some(500)]).await;

    // Edited (e.g. turned back on) inside the window: the clock restarts.
    let edited = old_webhook(&c, now).await;
    delivery(&c, edited, "failed", cutoff - secs(60), &[Some(500)]).await;
    delivery(&c, edited, "retrying", now - secs(60), &[Some(500)]).await;
    c.execute(
        "UPDATE postbox.webhooks SET updated_at = $2 WHERE id = $1",
        &[&edited, &(now - secs(3600))],
    )
    .await
    .unwrap();

    let report = run(&db, &config(), now).await;
    assert_eq!(report.disabled, vec![failing]);
    let (is_active, reason, at) = active(&c, failing).await;
    assert!(!is_active);
    assert_eq!(reason.as_deref(), Some("no successful delivery for 5 days"));
    assert_eq!(
        reason.unwrap(),
        disable_reason(Duration::from_secs(5 * 86400))
    );
    assert_eq!(at, Some(now));
    for kept in [
        young_failure,
        recovered,
        remembered,
        success_then_failing,
        quiet,
        edited,
    ] {
        assert!(active(&c, kept).await.0, "webhook {kept} stays active");
    }

    // A second run changes nothing.
    assert!(run(&db, &config(), now).await.disabled.is_empty());
    // An hour later the one failing since just after the cutoff goes too.
    let later = run(&db, &config(), now + secs(3600)).await;
    assert!(later.disabled.contains(&young_failure));
}

#[tokio::test]
async fn metrics_show_deliveries_queue_gauges_and_maintenance() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    // Started through the command line's own conversion, as `postbox serve` is.
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
        "postbox",
        "serve",
        "--database-url",
        &db.url,
        "--jwt-secret",
        "maintenance-test-secret-of-32-bytes",
        "--allow-private-targets",
        "--no-maintenance",
        "--poll-interval",
        "200ms",
    ])
    .unwrap();
    let crate::cli::Command::Serve(args) = cli.command else {
        panic!()
    };
    let serve_config = args.to_config().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(postbox::app::serve(
        serve_config,
        Some(listener),
        system_clock(),
        stop.clone(),
    ));
    for i in 0..3 {
        publish(&c, "project.updated", json!({"i": i}), "user_7").await;
    }
    rx.wait_for(3, WAIT).await;
    // A maintenance run that deletes something, so its counter appears.
    let old = pinned_now() - secs(3 * 86400);
    event(&c, old, false).await;
    let report = run(&db, &config(), pinned_now()).await;
    assert_eq!(report.deleted_events, 1);

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let metrics = || async { http.get(&url).send().await.unwrap().text().await.unwrap() };
    // The dispatcher records each outcome just after the receiver answers.
    wait_until("/metrics counts the deliveries", WAIT, || async {
        metrics().await.contains("postbox_deliveries_total")
    })
    .await;
    let body = metrics().await;
    for name in [
        "postbox_deliveries_total{",
        "postbox_attempt_duration_seconds_bucket",
        "postbox_delivery_latency_seconds_bucket",
        "postbox_claim_batch_size",
        "postbox_queue_depth{status=\"pending\"}",
        "postbox_queue_depth{status=\"retrying\"}",
        "postbox_queue_depth{status=\"sending\"}",
        "postbox_queue_depth{status=\"failed\"}",
        "postbox_oldest_due_seconds",
        "postbox_events_fanout_pending",
        "postbox_queue_paused",
        "postbox_maintenance_deleted_total{kind=\"events\"}",
        "postbox_maintenance_runs_total{result=\"ok\"}",
    ] {
        assert!(body.contains(name), "/metrics lacks {name}:\n{body}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postbox"));
    cmd.env_remove("RUST_LOG").env_remove("POSTBOX_LOG_FORMAT");
    cmd
}

#[tokio::test]
async fn maintain_prints_one_line_per_job_and_json_logs_parse() {
    let db = TestDb::new().await;
    let c = db.client().await;
    event(&c, pinned_now() - secs(3 * 86400), false).await;
    let out = bin()
        .args(["maintain"])
        .env("DATABASE_URL", &db.url)
        .env("POSTBOX_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "maintain failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("lease rescue: 0"));
    assert!(lines[1].starts_with("recover/replay: 0"));
    assert!(lines[2].starts_with("auto-disable: 0"));
    assert!(lines[3].contains("1 events no delivery needs"), "{stdout}");

    let logged: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!logged.is_empty(), "debug logging produced no line");
    for l in &logged {
        assert!(l["level"].is_string() && l["timestamp"].is_string(), "{l}");
    }

    // A failure is a readable line on stderr and a non-zero exit.
    let out = bin()
        .args(["migrate"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .env("POSTBOX_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn sigterm_lets_in_flight_deliveries_finish_and_exits_zero() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(std::sync::Arc::new(|_| Answer {
        delay: Duration::from_secs(1),
        ..Answer::status(200)
    }))
    .await;
    NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    let mut serve = bin();
    serve
        .args(["serve", "--no-api"])
        .env("DATABASE_URL", &db.url)
        .env("POSTBOX_ALLOW_PRIVATE_TARGETS", "true")
        .env("POSTBOX_SHUTDOWN_TIMEOUT", "10s")
        .env("POSTBOX_CONCURRENCY", "4")
        .env("POSTBOX_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = tokio::process::Command::from(serve)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for i in 0..20 {
        publish(&c, "project.updated", json!({"i": i}), "user_7").await;
    }
    rx.wait_for(1, WAIT).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("postbox serve exits within 20 s of SIGTERM")
        .unwrap();
    let (status, stderr) = (out.status, String::from_utf8(out.stderr).unwrap());
    assert_eq!(status.code(), Some(0), "exit status; stderr:\n{stderr}");
    let received = rx.count() as i64;
    assert!(received >= 1);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'sending'"
        )
        .await,
        0,
        "nothing is left claimed"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'"
        )
        .await,
        received,
        "every request the receiver got is recorded as a success"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries WHERE status NOT IN ('success', 'pending', 'retrying')").await,
        0,
        "the rest waits in the queue (or in the outbox, not fanned out yet)"
    );
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn the_scheduler_runs_the_jobs_on_schedule_and_stops_promptly() {
    let db = TestDb::new().await;
    let c = db.client().await;
    event(&c, pinned_now() - secs(3 * 86400), false).await;
    let every_second = MaintenanceConfig {
        schedule: "* * * * * *".parse().unwrap(),
        ..config()
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(postbox::maintenance::run(
        db.store(),
        every_second,
        system_clock(),
        stop.clone(),
    ));
    wait_until("a scheduled run deletes the old event", WAIT, || async {
        count(&c, "SELECT count(*) FROM postbox.events").await == 0
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the loop stops promptly")
        .unwrap()
        .unwrap();
}
