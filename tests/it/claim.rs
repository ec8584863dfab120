//! The claim at scale and with odd rows: it reaches due work webhook by
//! webhook, so neither a webhook at its in-flight cap nor a delivery whose
//! event is gone can stop the rows behind it.

use chrono::Utc;
use postbox::dispatch::Dispatcher;
use postbox::store::ClaimLimits;
use serde_json::json;

use crate::support::*;

fn limits<'a>(limit: i64, busy: &'a [uuid::Uuid], room: &'a [i64]) -> ClaimLimits<'a> {
    ClaimLimits {
        limit,
        busy_webhooks: busy,
        busy_room: room,
        lease: std::time::Duration::from_secs(60),
        per_webhook: 32,
    }
}

#[tokio::test]
async fn deliveries_whose_event_is_gone_do_not_block_the_rows_behind_them() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    // 150 deliveries queued first, whose events are then deleted by hand,
    // ahead of 10 good ones.
    c.batch_execute(&format!(
        "ALTER TABLE postbox.events DISABLE TRIGGER events_before_insert;
         INSERT INTO postbox.events (id, event_type, owner_id, payload, fanout_pending, created_at)
         SELECT postbox.uuid_v7(), 'project.created', 'user_7', jsonb_build_object('n', i), false,
                now() - interval '1 hour'
         FROM generate_series(1, 160) i;
         ALTER TABLE postbox.events ENABLE TRIGGER events_before_insert;
         INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, next_attempt_at)
         SELECT '{hook}', e.id, e.event_type,
                now() - interval '1 hour' + ((e.payload->>'n')::int * interval '1 second')
         FROM postbox.events e;
         DELETE FROM postbox.events WHERE (payload->>'n')::int <= 150;"
    ))
    .await
    .unwrap();

    let store = db.store();
    let claimed = store
        .delivery_claim(Utc::now(), limits(128, &[], &[]))
        .await
        .unwrap();
    // The webhook's room (32) bounds the claim: it took 32 orphans, which
    // became dead letters with the reason, and returned none of them.
    assert!(claimed.is_empty());
    let dead = count(
        &c,
        "SELECT count(*) FROM postbox.deliveries WHERE status = 'failed' AND error_message LIKE '%no longer exists%'",
    )
    .await;
    assert_eq!(dead, 32, "orphans at the head became dead letters");
    // Repeating the claim drains everything: the 150 orphans end as dead
    // letters, the 10 good rows are claimed.
    let mut good = claimed.len();
    for _ in 0..10 {
        good += store
            .delivery_claim(Utc::now(), limits(128, &[], &[]))
            .await
            .unwrap()
            .len();
    }
    assert_eq!(good, 10);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries WHERE status = 'failed' AND completed_at IS NOT NULL").await,
        150
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status IN ('pending', 'retrying')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_webhook_at_its_cap_does_not_hide_the_others_due_rows() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (capped, _) = NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    let (other, _) = NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    // 2,000 due rows of the capped webhook, all due before the other's 5.
    c.batch_execute(&format!(
        "ALTER TABLE postbox.events DISABLE TRIGGER events_before_insert;
         INSERT INTO postbox.events (id, event_type, owner_id, payload, fanout_pending)
         SELECT postbox.uuid_v7(), 'project.created', 'user_7', jsonb_build_object('n', i), false
         FROM generate_series(1, 2005) i;
         ALTER TABLE postbox.events ENABLE TRIGGER events_before_insert;
         INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, next_attempt_at)
         SELECT CASE WHEN (e.payload->>'n')::int <= 2000 THEN '{capped}'::uuid ELSE '{other}'::uuid END,
                e.id, e.event_type,
                now() - interval '1 hour' + ((e.payload->>'n')::int * interval '1 millisecond')
         FROM postbox.events e;"
    ))
    .await
    .unwrap();
    let claimed = db
        .store()
        .delivery_claim(Utc::now(), limits(128, &[capped], &[0]))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    assert!(claimed.iter().all(|d| d.webhook_id == other));
    // The claim did not walk the capped webhook's backlog: the scans on
    // deliveries touched a few rows, not 2,000.
    let touched = rows_touched_by_claim(&c, capped).await;
    assert!(touched < 100, "the claim touched {touched} delivery rows");
    // The capped webhook's rows were neither claimed nor left locked.
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(*) FROM (SELECT 1 FROM postbox.deliveries WHERE webhook_id = '{capped}' FOR UPDATE NOWAIT) l")
        )
        .await,
        2000
    );
}

#[tokio::test]
async fn one_claim_is_fair_across_webhooks_and_takes_the_earliest_first() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let mut hooks = Vec::new();
    for _ in 0..3 {
        hooks.push(
            NewWebhook::new("user_7", rx.url(), &["*"])
                .insert(&c)
                .await
                .0,
        );
    }
    for i in 0..300 {
        publish(&c, "project.created", json!({"i": i}), "user_7").await;
    }
    // Fan out without claiming: the queue is paused for the fan-out.
    c.batch_execute("UPDATE postbox.queue_state SET paused = true")
        .await
        .unwrap();
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    while d.run_once().await.unwrap().events_fanned_out > 0 {}
    c.batch_execute("UPDATE postbox.queue_state SET paused = false")
        .await
        .unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'pending'"
        )
        .await,
        900
    );
    let claimed = db
        .store()
        .delivery_claim(Utc::now(), limits(64, &[], &[]))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 64);
    for h in &hooks {
        let n = claimed.iter().filter(|d| d.webhook_id == *h).count();
        assert!(n <= 32, "no webhook over its room: {n}");
    }
    // Within a webhook, the earliest due rows go first.
    for h in &hooks {
        let mut mine: Vec<_> = claimed.iter().filter(|d| d.webhook_id == *h).collect();
        mine.sort_by_key(|d| d.event_created_at);
        let first: serde_json::Value = match mine.first() {
            Some(d) => serde_json::from_str(&d.payload).unwrap(),
            None => continue,
        };
        assert_eq!(first["i"], json!(0));
    }
}

/// Rows the claim statement's scans on `postbox.deliveries` returned or
/// filtered out (EXPLAIN ANALYZE, rolled back), with `capped` at its cap.
async fn rows_touched_by_claim(c: &tokio_postgres::Client, capped: uuid::Uuid) -> i64 {
    let sql = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/delivery_claim.sql"
    ));
    c.batch_execute(&format!(
        "BEGIN; PREPARE claim_probe(bigint, timestamptz, uuid[], float8, bigint, bigint[]) AS {sql}"
    ))
    .await
    .unwrap();
    let plan: serde_json::Value = c
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_probe(128, now(), '{{{capped}}}', 60, 32, '{{0}}')"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.batch_execute("ROLLBACK").await.unwrap();
    fn walk(node: &serde_json::Value, total: &mut i64) {
        let on_deliveries = node["Relation Name"] == "deliveries";
        let scan = node["Node Type"]
            .as_str()
            .is_some_and(|t| t.contains("Scan"));
        if on_deliveries && scan {
            let loops = node["Actual Loops"].as_i64().unwrap_or(1);
            *total += (node["Actual Rows"].as_i64().unwrap_or(0)
                + node["Rows Removed by Filter"].as_i64().unwrap_or(0)
                + node["Rows Removed by Index Recheck"].as_i64().unwrap_or(0))
                * loops;
        }
        if let Some(children) = node["Plans"].as_array() {
            for child in children {
                walk(child, total);
            }
        }
    }
    let mut total = 0;
    walk(&plan[0]["Plan"], &mut total);
    total
}
