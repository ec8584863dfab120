//! Plan shape of the hot statements: the work of each grows linearly with the
//! rows it handles, in the generic plan a pooled connection ends up with.
//!
//! A generic plan estimates an `unnest` of array parameters at 10 rows and a
//! fresh table at a few pages. The completion statement once joined two such
//! row sets (its outcomes and the rows it had locked) with a nested loop that
//! rescanned one for each row of the other: 256 outcomes cost 65,280 join
//! comparisons and 45 ms, a fifth of the drain's rate (docs/PERFORMANCE.md,
//! "Completion: a quadratic generic plan"). These tests read EXPLAIN ANALYZE
//! (JSON) of a generic plan on a batch of realistic size and fail when any
//! node compares or rescans more rows than a small multiple of the batch.
//! They assert counts of rows, never a time.

use serde_json::Value;

use crate::support::*;

/// Deliveries per batch: the size the drain's completer writes (its batches
/// held 150-260 outcomes in the benchmark).
const N: i64 = 256;

/// 1,000 finished deliveries of their own events: history.
const HISTORY: &str = "
    WITH e AS (
        INSERT INTO postbox.events (event_type, owner_id, payload, fanout_pending)
        SELECT 'webhook.test', 'o0', '{}', false FROM generate_series(1, 1000)
        RETURNING id
    )
    INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts,
                                    next_attempt_at, completed_at)
    SELECT (SELECT id FROM postbox.webhooks WHERE owner_id = 'o0'), e.id, 'webhook.test',
           'success', 1, now(), now()
    FROM e;";

/// Rows any one plan node may touch per row of the batch (the checks and
/// lookups of one row, not one per pair of rows).
const PER_ROW: f64 = 8.0;

/// Walks `plan` and reports every node that pairs or rescans rows more than
/// `limit` times: a CTE scan's or a sequential scan's rows (returned and
/// filtered out) times its loops, or the rows a join filter compared and
/// removed.
fn heavy_nodes(plan: &Value, limit: f64, out: &mut Vec<String>) {
    let f = |k: &str| plan.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let loops = f("Actual Loops").max(1.0);
    let node = plan.get("Node Type").and_then(Value::as_str);
    let cte = node == Some("CTE Scan") || node == Some("Seq Scan");
    // Any scan's rows read and thrown away by its filter count too: an
    // index probe that walks a webhook's whole history to find one row (the
    // wrong index in a generic plan) is as quadratic as a CTE rescan.
    let examined = f("Rows Removed by Join Filter") * loops
        + if cte {
            (f("Actual Rows") + f("Rows Removed by Filter")) * loops
        } else {
            f("Rows Removed by Filter") * loops
        };
    if examined > limit {
        out.push(format!(
            "{} {} (rows {}, loops {}, removed by join filter {}): {} rows examined",
            plan.get("Node Type").and_then(Value::as_str).unwrap_or("?"),
            plan.get("CTE Name")
                .or_else(|| plan.get("Relation Name"))
                .and_then(Value::as_str)
                .unwrap_or(""),
            f("Actual Rows"),
            loops,
            f("Rows Removed by Join Filter"),
            examined
        ));
    }
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            heavy_nodes(child, limit, out);
        }
    }
}

/// Prepares `sql` as `q` in a session set up as the dispatcher's and runs it
/// five times (each rolled back) as a dispatcher started on a small database
/// would; then runs `grow` (the rows arrive; no ANALYZE, as with autovacuum
/// off or behind, so the cached plan stays), and returns the root node of `EXPLAIN (ANALYZE,
/// FORMAT JSON) EXECUTE q(args)`. Everything is rolled back.
async fn generic_plan(c: &tokio_postgres::Client, sql: &str, grow: &str, args: &str) -> Value {
    // The dispatcher's session, exactly (its pool's connections take these).
    c.batch_execute("BEGIN").await.unwrap();
    for (name, value) in postbox::store::DISPATCHER_SESSION {
        c.batch_execute(&format!("SET LOCAL {name} = {value}"))
            .await
            .unwrap();
    }
    c.batch_execute(&format!("PREPARE q AS {sql}"))
        .await
        .unwrap();
    // Five runs first, as a pooled connection would (the plan cache
    // considers a generic plan after five); each in a savepoint.
    for _ in 0..5 {
        c.batch_execute(&format!(
            "SAVEPOINT s; EXECUTE q({args}); ROLLBACK TO SAVEPOINT s"
        ))
        .await
        .unwrap();
    }
    c.batch_execute(grow).await.unwrap();
    let messages = c
        .simple_query(&format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE q({args})"))
        .await
        .unwrap();
    c.batch_execute("ROLLBACK").await.unwrap();
    let text = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("EXPLAIN returned no row");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc[0]["Plan"].clone()
}

fn assert_linear(name: &str, plan: &Value) {
    let mut heavy = Vec::new();
    heavy_nodes(plan, PER_ROW * N as f64, &mut heavy);
    assert!(
        heavy.is_empty(),
        "{name}: nodes that examine more than {PER_ROW} rows per row of a {N}-row batch \
         (a quadratic plan):\n{}\n\nplan: {plan:#}",
        heavy.join("\n")
    );
}

#[tokio::test]
async fn completing_a_batch_examines_each_outcome_once_in_the_generic_plan() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "INSERT INTO postbox.webhooks (owner_id, url, event_types)
         SELECT 'o' || g, 'http://127.0.0.1:9/x', '{{*}}' FROM generate_series(0, 9) g;
         INSERT INTO postbox.events (event_type, owner_id, payload)
         SELECT 'webhook.test', 'o' || (g % 10), jsonb_build_object('n', g)
         FROM generate_series(1, {N}) g;
         CREATE TABLE ids AS SELECT postbox.uuid_v7() AS id, e.id AS event_id, e.owner_id
                             FROM postbox.events e;
         -- A little history when the dispatcher starts.
         {HISTORY}"
    ))
    .await
    .unwrap();
    let args: String = c
        .query_one(
            "SELECT format('%L, %L, %L, %L, %L, %L, %L, %L, %L, now(), %L, %L, 10, 30, 1800, %L, ''{}''::uuid[], ''{}''::text[]',
                           array_agg(id), array_agg(1), array_agg('success'::postbox.delivery_status),
                           array_agg(NULL::timestamptz), array_agg(200), array_agg(''::text),
                           array_agg(NULL::text), array_agg(now()), array_agg(3),
                           array_agg(NULL::timestamptz), array_agg(true), array_agg(false))
             FROM ids",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The dispatcher's first completions find no rows; then a burst arrives,
    // after much more history than the plan was made with.
    let grow = format!(
        "{}{}{}{}
         INSERT INTO postbox.deliveries (id, webhook_id, event_id, event_type, status, attempts,
                                         next_attempt_at, lease_expires_at)
         SELECT i.id, w.id, i.event_id, 'webhook.test', 'sending', 1, now(), now() + interval '30 s'
         FROM ids i JOIN postbox.webhooks w ON w.owner_id = i.owner_id",
        HISTORY, HISTORY, HISTORY, HISTORY
    );
    let plan = generic_plan(
        &c,
        include_str!("../../sql/delivery_complete_many.sql"),
        &grow,
        &args,
    )
    .await;
    // Sanity: the statement did complete the batch (the plan is the real one).
    assert_eq!(plan["Actual Rows"].as_f64(), Some(N as f64), "{plan:#}");
    assert_linear("delivery_complete_many", &plan);
}

#[tokio::test]
async fn fanning_out_a_batch_examines_each_event_a_bounded_number_of_times_in_the_generic_plan() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO postbox.webhooks (owner_id, url, event_types)
         SELECT 'o' || g, 'http://127.0.0.1:9/x', '{*}' FROM generate_series(0, 9) g;",
    )
    .await
    .unwrap();
    // The dispatcher's first passes find nothing; then a burst is committed.
    let grow = format!(
        "INSERT INTO postbox.events (event_type, owner_id, payload)
         SELECT 'webhook.test', 'o' || (g % 10), jsonb_build_object('n', g)
         FROM generate_series(1, {N}) g"
    );
    // Every event, a claim of half of them, two webhooks already busy.
    let busy: String = c
        .query_one(
            "SELECT format('%L', array_agg(id)) FROM (SELECT id FROM postbox.webhooks LIMIT 2) w",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let args = format!(
        "{N}, now(), {}, {busy}::uuid[], 30, 32, '{{4,0}}'::bigint[], 1000",
        N / 2
    );
    let plan = generic_plan(
        &c,
        include_str!("../../sql/event_fanout_many.sql"),
        &grow,
        &args,
    )
    .await;
    // Sanity: deliveries were claimed (returned), so the plan is the real one.
    assert!(
        plan["Actual Rows"].as_f64().unwrap_or(0.0) >= 64.0,
        "{plan:#}"
    );
    assert_linear("event_fanout_many", &plan);
}

#[tokio::test]
async fn fanning_out_keyed_events_examines_each_event_a_bounded_number_of_times() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO postbox.webhooks (owner_id, url, event_types)
         SELECT 'o' || g, 'http://127.0.0.1:9/x', '{*}' FROM generate_series(0, 9) g;",
    )
    .await
    .unwrap();
    // One endpoint's burst over 64 keys, after much history of that
    // webhook: most rows are held behind their line's first, and half the
    // lines already have a head in flight.
    let grow = format!(
        "{HISTORY}{HISTORY}{HISTORY}{HISTORY}
         INSERT INTO postbox.events (event_type, owner_id, payload, ordering_key)
         SELECT 'webhook.test', 'o0', jsonb_build_object('n', g), 'k' || (g % 64)
         FROM generate_series(1, {N}) g;
         INSERT INTO postbox.ordering_lines (webhook_id, ordering_key, head)
         SELECT w.id, 'k' || k, postbox.uuid_v7()
         FROM postbox.webhooks w, generate_series(0, 31) k;"
    );
    let args = format!(
        "{N}, now(), {}, '{{}}'::uuid[], 30, 32, '{{}}'::bigint[], 1000",
        N / 2
    );
    let plan = generic_plan(
        &c,
        include_str!("../../sql/event_fanout_many.sql"),
        &grow,
        &args,
    )
    .await;
    assert!(
        plan["Actual Rows"].as_f64().unwrap_or(0.0) >= 1.0,
        "{plan:#}"
    );
    assert_linear("event_fanout_many (keyed)", &plan);
}

#[tokio::test]
async fn promoting_many_lines_examines_each_line_a_bounded_number_of_times() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO postbox.webhooks (owner_id, url, event_types)
         VALUES ('o0', 'http://127.0.0.1:9/x', '{*}');",
    )
    .await
    .unwrap();
    // N lines whose head was delivered, three held rows behind each.
    let grow = format!(
        "WITH e AS (
             INSERT INTO postbox.events (event_type, owner_id, payload, fanout_pending, ordering_key)
             SELECT 'webhook.test', 'o0', '{{}}', false, 'k' || (g % {N})
             FROM generate_series(0, {N} * 4 - 1) g
             RETURNING id, ordering_key, ordering_seq
         ), d AS (
             INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts,
                                             ordering_key, ordering_seq)
             SELECT (SELECT id FROM postbox.webhooks), e.id, 'webhook.test',
                    CASE WHEN row_number() OVER (PARTITION BY e.ordering_key ORDER BY e.ordering_seq) = 1
                         THEN 'success' ELSE 'held' END::postbox.delivery_status,
                    1, e.ordering_key, e.ordering_seq
             FROM e
             RETURNING id, webhook_id, ordering_key, status
         )
         INSERT INTO postbox.ordering_lines (webhook_id, ordering_key, head)
         SELECT webhook_id, ordering_key, id FROM d WHERE status = 'success';"
    );
    let args: String = c
        .query_one(
            &format!(
                "SELECT format('%L::uuid[], %L::text[], now()', array_agg(w.id), array_agg('k' || g))
                 FROM postbox.webhooks w, generate_series(0, {N} - 1) g"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let plan = generic_plan(
        &c,
        include_str!("../../sql/delivery_promote_lines.sql"),
        &grow,
        &args,
    )
    .await;
    assert_linear("delivery_promote_lines", &plan);
    // Sanity: one held row per line was promoted (the UPDATE of deliveries).
    fn updated(plan: &Value, table: &str) -> Option<f64> {
        if plan["Node Type"] == "ModifyTable"
            && plan["Operation"] == "Update"
            && plan["Relation Name"] == table
        {
            return plan["Actual Rows"].as_f64();
        }
        plan["Plans"]
            .as_array()?
            .iter()
            .find_map(|p| updated(p, table))
    }
    assert_eq!(updated(&plan, "deliveries"), Some(N as f64), "{plan:#}");
}
