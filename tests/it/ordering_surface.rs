//! Ordered delivery's outside (issue 16, SPEC 7.2): publishing with an
//! ordering key and supersede through SQL, the API and the CLI; commit order
//! under concurrent producers of one key; supersede in the producer's
//! transaction; the webhook's `orderingPolicy`; `held` and `cancelled` in
//! the delivery history. The dispatcher's side (fan-out into lines,
//! promotion) has its own tests.

use std::time::{Duration, Instant};

use postbox::publish::PublishOptions;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api_support::Api;
use crate::support::*;

/// `postbox.publish` with an ordering key (named parameter), autocommit.
async fn publish_keyed(
    c: &tokio_postgres::Client,
    event_type: &str,
    owner: &str,
    key: &str,
) -> Uuid {
    c.query_one(
        "SELECT postbox.publish($1, '{}'::jsonb, $2, ordering_key => $3)",
        &[&event_type, &owner, &key],
    )
    .await
    .unwrap()
    .get(0)
}

/// An event's (ordering_key, ordering_seq, supersede, superseded_by).
async fn ordering_of(
    c: &tokio_postgres::Client,
    id: Uuid,
) -> (Option<String>, Option<i64>, bool, Option<Uuid>) {
    let r = c
        .query_one(
            "SELECT ordering_key, ordering_seq, supersede, superseded_by FROM postbox.events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// The first column of every row `sql` answers.
async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &tokio_postgres::Client,
    sql: &str,
) -> Vec<T> {
    let rows = c.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Publishes a `project.updated` of owner `shop` and key `key` that
/// supersedes the earlier ones, in `c` (a client or a transaction).
async fn publish_superseding(c: &impl tokio_postgres::GenericClient, key: &str) -> Uuid {
    c.query_one(
        "SELECT postbox.publish('project.updated', '{}', 'shop', ordering_key => $1, supersede => true)",
        &[&key],
    )
    .await
    .unwrap()
    .get(0)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_keyed_publish_stores_its_key_and_a_commit_order_number_and_a_plain_insert_may_set_the_key(
) {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let first = publish_keyed(&c, "project.updated", "user_7", "project-42").await;
    let second = publish_keyed(&c, "project.updated", "user_7", "project-42").await;
    let (key, seq1, supersede, by) = ordering_of(&c, first).await;
    assert_eq!(key.as_deref(), Some("project-42"));
    assert!(!supersede && by.is_none());
    let (_, seq2, _, _) = ordering_of(&c, second).await;
    assert!(seq2.unwrap() > seq1.unwrap(), "{seq1:?} then {seq2:?}");

    // An unkeyed event takes no number.
    let plain = publish(&c, "project.updated", json!({}), "user_7").await;
    assert_eq!(ordering_of(&c, plain).await, (None, None, false, None));

    // A plain INSERT sets the columns; the trigger numbers it and ignores a
    // number or superseded_by written by hand.
    let inserted: Uuid = c
        .query_one(
            "INSERT INTO postbox.events (event_type, owner_id, payload, ordering_key, ordering_seq, superseded_by)
             VALUES ('project.updated', 'user_7', '{}', 'project-42', -5, gen_random_uuid()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (key, seq3, _, by) = ordering_of(&c, inserted).await;
    assert_eq!(key.as_deref(), Some("project-42"));
    assert!(seq3.unwrap() > seq2.unwrap());
    assert_eq!(by, None);

    // The Rust library call, in the caller's transaction.
    let tx = c.transaction().await.unwrap();
    let from_rust = postbox::publish::publish(
        &tx,
        "project.updated",
        &json!({"id": 42}),
        "user_7",
        &PublishOptions {
            ordering_key: Some("project-42"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(ordering_of(&c, from_rust).await.1.unwrap() > seq3.unwrap());

    // Keys are 1 to 256 bytes (a 2-byte character counts twice).
    for bad in [String::new(), "é".repeat(129)] {
        let e = c
            .query_one(
                "SELECT postbox.publish('project.updated', '{}', 'user_7', ordering_key => $1)",
                &[&bad],
            )
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22023", "{e:?}");
    }
    publish_keyed(&c, "project.updated", "user_7", &"é".repeat(128)).await;
}

#[tokio::test]
async fn producers_of_one_key_take_turns_and_the_later_commit_gets_the_greater_number() {
    let db = TestDb::new().await;
    let mut a = db.client().await;
    let b = db.client().await;
    let other = db.client().await;

    let tx = a.transaction().await.unwrap();
    let a_id: Uuid = tx
        .query_one(
            "SELECT postbox.publish('project.updated', '{\"by\": \"a\"}', 'shop', ordering_key => 'project-1')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let waiting = tokio::spawn(async move {
        let id = publish_keyed(&b, "project.updated", "shop", "project-1").await;
        (b, id)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "B published project-1 while A's transaction with project-1 was open"
    );

    // Another key, and the same key of another owner, do not wait for A.
    for (owner, key) in [("shop", "project-2"), ("other-shop", "project-1")] {
        tokio::time::timeout(
            Duration::from_secs(5),
            publish_keyed(&other, "project.updated", owner, key),
        )
        .await
        .unwrap_or_else(|_| panic!("{owner}/{key} waited for A's project-1"));
    }

    tx.commit().await.unwrap();
    let (b, b_id) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("B goes on once A commits")
        .unwrap();
    let a_seq = ordering_of(&b, a_id).await.1.unwrap();
    let b_seq = ordering_of(&b, b_id).await.1.unwrap();
    assert!(b_seq > a_seq, "A committed first: {a_seq} < {b_seq}");
}

#[tokio::test]
async fn a_rolled_back_producer_lets_the_waiting_one_go() {
    let db = TestDb::new().await;
    let mut a = db.client().await;
    let b = db.client().await;
    let tx = a.transaction().await.unwrap();
    tx.query_one(
        "SELECT postbox.publish('project.updated', '{}', 'shop', ordering_key => 'project-1')",
        &[],
    )
    .await
    .unwrap();
    let waiting = tokio::spawn(async move {
        let id = publish_keyed(&b, "project.updated", "shop", "project-1").await;
        (b, id)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "B did not wait for A");
    tx.rollback().await.unwrap();
    let (b, b_id) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("B goes on once A rolls back")
        .unwrap();
    let ids: Vec<Uuid> = column(&b, "SELECT id FROM postbox.events").await;
    assert_eq!(ids, vec![b_id]);
}

#[tokio::test]
async fn supersede_without_a_key_is_refused_by_sql_the_api_and_the_cli() {
    let api = Api::start().await;
    let c = api.db.client().await;
    for sql in [
        "SELECT postbox.publish('project.updated', '{}', 'shop', supersede => true)",
        "INSERT INTO postbox.events (event_type, owner_id, payload, supersede) VALUES ('project.updated', 'shop', '{}', true)",
    ] {
        let e = c.execute(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), "22023", "{sql}: {e:?}");
        let msg = e.as_db_error().unwrap().message();
        assert!(msg.contains("supersede needs an ordering key"), "{msg}");
    }

    let (s, j) = api
        .call(
            "POST",
            "/api/events",
            Some(&api.token("shop")),
            Some(json!({"type": "project.updated", "data": {}, "supersede": true})),
        )
        .await;
    assert_eq!(
        (s, j["error"]["details"][0]["field"].clone()),
        (400, json!("supersede")),
        "{j}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args([
            "publish",
            "project.updated",
            "{}",
            "--owner",
            "shop",
            "--supersede",
        ])
        .env("DATABASE_URL", api.db.url.as_str())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--ordering-key"), "{stderr}");
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 0);
}

/// A delivery row as the fan-out writes one for a keyed event (the
/// dispatcher's statement is not needed to test the producer's side).
async fn keyed_delivery(
    c: &tokio_postgres::Client,
    webhook: Uuid,
    event: Uuid,
    status: &str,
) -> Uuid {
    c.query_one(
        "INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, ordering_key, ordering_seq)
         SELECT $1, e.id, e.event_type, $3::text::postbox.delivery_status, e.ordering_key, e.ordering_seq
         FROM postbox.events e WHERE e.id = $2
         RETURNING id",
        &[&webhook, &event, &status],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn supersede_marks_the_keys_unfanned_events_and_cancels_its_unsent_deliveries_in_the_producers_transaction(
) {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (hook, _) = NewWebhook::new("shop", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;

    // Three updates of project-1 wait for their fan-out; beside them, the
    // same type on another key and another type on the same key.
    let mut stale = vec![];
    for _ in 0..3 {
        stale.push(publish_keyed(&c, "project.updated", "shop", "project-1").await);
    }
    let other_key = publish_keyed(&c, "project.updated", "shop", "project-2").await;
    let other_type = publish_keyed(&c, "project.created", "shop", "project-1").await;

    // Rolled back: nothing is marked.
    let tx = c.transaction().await.unwrap();
    publish_superseding(&tx, "project-1").await;
    tx.rollback().await.unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE superseded_by IS NOT NULL"
        )
        .await,
        0
    );

    let tx = c.transaction().await.unwrap();
    let latest = postbox::publish::publish(
        &tx,
        "project.updated",
        &json!({"status": "shipped"}),
        "shop",
        &PublishOptions {
            ordering_key: Some("project-1"),
            supersede: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for id in &stale {
        assert_eq!(ordering_of(&c, *id).await.3, Some(latest), "stale {id}");
    }
    assert_eq!(ordering_of(&c, other_key).await.3, None);
    assert_eq!(ordering_of(&c, other_type).await.3, None);
    let (_, _, supersede, by) = ordering_of(&c, latest).await;
    assert!(supersede && by.is_none());

    // Fanned out (rows written as the fan-out writes them): pending,
    // retrying and held deliveries are cancelled, one in flight is not.
    let fanned: Vec<Uuid> = {
        let mut v = vec![];
        for _ in 0..4 {
            v.push(publish_keyed(&c, "project.updated", "shop", "project-3").await);
        }
        v
    };
    c.execute(
        "UPDATE postbox.events SET fanout_pending = false WHERE ordering_key = 'project-3'",
        &[],
    )
    .await
    .unwrap();
    let sending = keyed_delivery(&c, hook, fanned[0], "sending").await;
    let retrying = keyed_delivery(&c, hook, fanned[1], "retrying").await;
    let held = keyed_delivery(&c, hook, fanned[2], "held").await;
    let pending = keyed_delivery(&c, hook, fanned[3], "pending").await;

    let tx = c.transaction().await.unwrap();
    publish_superseding(&tx, "project-3").await;
    tx.rollback().await.unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'cancelled'"
        )
        .await,
        0,
        "rolled back: nothing cancelled"
    );

    let newest = publish_superseding(&c, "project-3").await;
    let status_of = |id: Uuid| {
        let c = &c;
        async move {
            let r = c
                .query_one(
                    "SELECT status::text, error_message, completed_at IS NOT NULL FROM postbox.deliveries WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1),
                r.get::<_, bool>(2),
            )
        }
    };
    assert_eq!(status_of(sending).await, ("sending".into(), None, false));
    let reason = format!("superseded by event {newest}");
    for id in [retrying, held, pending] {
        assert_eq!(
            status_of(id).await,
            ("cancelled".into(), Some(reason.clone()), true),
            "{id}"
        );
    }
    // The line whose deliveries were cancelled waits for the dispatcher's
    // promotion pass.
    let dirty: Vec<String> = column(
        &c,
        "SELECT webhook_id || ' ' || ordering_key FROM postbox.ordering_dirty",
    )
    .await;
    assert_eq!(dirty, vec![format!("{hook} project-3")]);
}

#[tokio::test]
async fn the_api_publishes_with_an_ordering_key_and_names_the_field_it_refuses() {
    let api = Api::start().await;
    let c = api.db.client().await;
    let t = api.token("shop");
    let call = |body: Value| {
        let (api, t) = (&api, &t);
        async move { api.call("POST", "/api/events", Some(t), Some(body)).await }
    };

    let (s, j) =
        call(json!({"type": "project.updated", "data": {"n": 1}, "orderingKey": "project-1"}))
            .await;
    assert_eq!(s, 202, "{j}");
    assert_eq!(
        j["data"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["duplicate", "id", "payloadMatches"],
        "the answer's shape is unchanged"
    );
    let first: Uuid = j["data"]["id"].as_str().unwrap().parse().unwrap();
    let (s, j) = call(json!({
        "type": "project.updated", "data": {"n": 2}, "orderingKey": "project-1", "supersede": true
    }))
    .await;
    assert_eq!(s, 202, "{j}");
    let second: Uuid = j["data"]["id"].as_str().unwrap().parse().unwrap();
    let (key, seq1, _, by) = ordering_of(&c, first).await;
    assert_eq!((key.as_deref(), by), (Some("project-1"), Some(second)));
    let (_, seq2, supersede, _) = ordering_of(&c, second).await;
    assert!(supersede && seq2 > seq1);
    // null is absent.
    let (s, j) = call(
        json!({"type": "project.updated", "data": {}, "orderingKey": null, "supersede": null}),
    )
    .await;
    assert_eq!(s, 202, "{j}");

    let long = "k".repeat(257);
    let wide = "é".repeat(129);
    for (body, field) in [
        (json!({"orderingKey": ""}), "orderingKey"),
        (json!({"orderingKey": long}), "orderingKey"),
        (json!({"orderingKey": wide}), "orderingKey"),
        (json!({"orderingKey": "a\u{0}b"}), "orderingKey"),
        (json!({"orderingKey": 42}), "orderingKey"),
        (json!({"orderingKey": "k", "supersede": "yes"}), "supersede"),
        (json!({"supersede": true}), "supersede"),
        (json!({"orderingKey": null, "supersede": true}), "supersede"),
    ] {
        let mut b = json!({"type": "project.updated", "data": {}});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let (s, j) = call(b.clone()).await;
        assert_eq!(
            (s, j["error"]["details"][0]["field"].clone()),
            (400, json!(field)),
            "{b}: {j}"
        );
    }
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 3);
}

#[tokio::test]
async fn ordering_policy_round_trips_through_create_update_get_and_list() {
    let api = Api::start().await;
    let t = api.token("shop");
    let body = |extra: Value| {
        let mut b = json!({"name": "n", "url": "http://127.0.0.1:9/hook", "events": ["*"]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let plain = api.create("shop", body(json!({}))).await;
    assert_eq!(plain["orderingPolicy"], "block", "the default");
    let skip = api
        .create("shop", body(json!({"orderingPolicy": "skip_failed"})))
        .await;
    assert_eq!(skip["orderingPolicy"], "skip_failed");

    let id = plain["id"].as_str().unwrap();
    let path = format!("/api/webhooks/{id}");
    // Set, kept when absent from an update, read back.
    for (method, body) in [
        ("PUT", Some(json!({"orderingPolicy": "skip_failed"}))),
        ("PUT", Some(json!({"name": "renamed"}))),
        ("GET", None),
    ] {
        let (s, j) = api.call(method, &path, Some(&t), body).await;
        assert_eq!(
            (s, j["data"]["orderingPolicy"].clone()),
            (200, json!("skip_failed")),
            "{method}: {j}"
        );
    }
    let (s, j) = api.call("GET", "/api/webhooks", Some(&t), None).await;
    assert_eq!(s, 200);
    let mut listed: Vec<String> = j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["orderingPolicy"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["skip_failed", "skip_failed"]);
    let c = api.db.client().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.webhooks WHERE ordering_policy = 'skip_failed'"
        )
        .await,
        2
    );

    for bad in [json!("strict"), json!(null), json!(1), json!("BLOCK")] {
        let (s, j) = api
            .call(
                "POST",
                "/api/webhooks",
                Some(&t),
                Some(body(json!({"orderingPolicy": bad}))),
            )
            .await;
        assert_eq!(
            (s, j["error"]["details"][0]["field"].clone()),
            (400, json!("orderingPolicy")),
            "{bad}: {j}"
        );
        let (s, j) = api
            .call(
                "PUT",
                &format!("/api/webhooks/{id}"),
                Some(&t),
                Some(json!({"orderingPolicy": bad})),
            )
            .await;
        assert_eq!(
            (s, j["error"]["details"][0]["field"].clone()),
            (400, json!("orderingPolicy")),
            "{bad}: {j}"
        );
    }
}

#[tokio::test]
async fn deliveries_show_their_ordering_key_and_filter_on_held_and_cancelled() {
    let api = Api::start().await;
    let t = api.token("shop");
    let c = api.db.client().await;
    let hook = api
        .create(
            "shop",
            json!({"name": "n", "url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    let id: Uuid = hook["id"].as_str().unwrap().parse().unwrap();
    let head = publish_keyed(&c, "project.updated", "shop", "project-1").await;
    let next = publish_keyed(&c, "project.updated", "shop", "project-1").await;
    let plain = publish(&c, "project.updated", json!({}), "shop").await;
    c.execute("UPDATE postbox.events SET fanout_pending = false", &[])
        .await
        .unwrap();
    keyed_delivery(&c, id, head, "pending").await;
    let held = keyed_delivery(&c, id, next, "held").await;
    keyed_delivery(&c, id, plain, "pending").await;

    let list = |q: &'static str| {
        let (api, t) = (&api, &t);
        async move {
            api.call(
                "GET",
                &format!("/api/webhooks/{id}/deliveries{q}"),
                Some(t),
                None,
            )
            .await
        }
    };
    let (s, j) = list("").await;
    assert_eq!(s, 200, "{j}");
    let mut keys: Vec<Value> = j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["orderingKey"].clone())
        .collect();
    keys.sort_by_key(|k| k.to_string());
    assert_eq!(keys, [json!("project-1"), json!("project-1"), Value::Null]);

    let (s, j) = list("?status=held").await;
    assert_eq!(s, 200, "{j}");
    let rows = j["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{j}");
    assert_eq!(rows[0]["id"], json!(held));
    assert_eq!(rows[0]["status"], "held");
    assert_eq!(j["pagination"]["total"], 1, "{j}");

    publish_superseding(&c, "project-1").await;
    let (s, j) = list("?status=cancelled").await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"].as_array().unwrap().len(), 2, "{j}");
    assert!(j["data"][0]["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("superseded by event "));
    let (s, j) = list("?status=held").await;
    assert_eq!((s, j["data"].as_array().unwrap().len()), (200, 0), "{j}");

    let (s, j) = list("?status=stuck").await;
    assert_eq!(
        (s, j["error"]["details"][0]["field"].clone()),
        (400, json!("status")),
        "{j}"
    );
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("held, cancelled"),
        "{j}"
    );

    // One delivery, as the retry answer and the webhook's recent list show it.
    let (s, j) = api
        .call("GET", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, 200);
    assert!(j["data"]["recentDeliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d.get("orderingKey").is_some()));
}

#[tokio::test]
async fn the_cli_publishes_with_an_ordering_key_and_supersede() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
            .args([
                "publish",
                "project.updated",
                "{\"n\": 1}",
                "--owner",
                "shop",
            ])
            .args(args)
            .env("DATABASE_URL", db.url.as_str())
            .output()
            .unwrap()
    };
    let out = run(&["--ordering-key", "project-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Uuid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let (key, seq, supersede, _) = ordering_of(&c, first).await;
    assert_eq!((key.as_deref(), supersede), (Some("project-1"), false));
    assert!(seq.is_some());

    let out = run(&["--ordering-key", "project-1", "--supersede"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: Uuid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(ordering_of(&c, first).await.3, Some(second));

    // The database's refusal, in its own words.
    let long = "k".repeat(257);
    let out = run(&["--ordering-key", &long]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ordering key must be 1 to 256 bytes"),
        "{stderr}"
    );
}

/// What a key costs its producers, for docs/INTEGRATION.md: N sequential
/// publish-and-commit transactions, unkeyed, all of one key, each its own
/// key; then two producers of one key against two of different keys, each
/// holding its transaction open for 5 ms after publishing. Run by hand:
/// `cargo test --test it ordering_surface::cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn cost_of_an_ordering_key_for_producers() {
    const N: usize = 200;
    async fn sequential(
        c: &mut tokio_postgres::Client,
        key: fn(usize) -> Option<String>,
    ) -> Duration {
        let start = Instant::now();
        for i in 0..N {
            let tx = c.transaction().await.unwrap();
            tx.query_one(
                "SELECT postbox.publish('project.updated', '{\"n\": 1}', 'shop', ordering_key => $1)",
                &[&key(i)],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        start.elapsed()
    }
    let db = TestDb::new().await;
    let mut c = db.client().await;
    // Warm up the connection and the plans.
    sequential(&mut c, |_| None).await;
    for round in 0..3 {
        let unkeyed = sequential(&mut c, |_| None).await;
        let one_key = sequential(&mut c, |_| Some("project-1".into())).await;
        let own_keys = sequential(&mut c, |i| Some(format!("project-{i}"))).await;
        println!(
            "round {round}: {N} publish+commit: unkeyed {unkeyed:?} ({:.0} us each), one key {one_key:?} ({:.0} us each), a key each {own_keys:?} ({:.0} us each)",
            unkeyed.as_micros() as f64 / N as f64,
            one_key.as_micros() as f64 / N as f64,
            own_keys.as_micros() as f64 / N as f64,
        );
    }
    for same_key in [true, false] {
        let start = Instant::now();
        let mut tasks = vec![];
        for p in 0..2 {
            let mut c = db.client().await;
            let key = if same_key {
                "shared".to_string()
            } else {
                format!("own-{p}")
            };
            tasks.push(tokio::spawn(async move {
                for _ in 0..N / 2 {
                    let tx = c.transaction().await.unwrap();
                    tx.query_one(
                        "SELECT postbox.publish('project.updated', '{}', 'shop', ordering_key => $1)",
                        &[&key],
                    )
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "2 producers x {} transactions holding 5 ms after the publish, {}: {:?}",
            N / 2,
            if same_key { "one key" } else { "a key each" },
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn success_retention_deletes_cancelled_deliveries_and_keeps_the_last_success_time() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (hook, _) = NewWebhook::new("shop", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    let stale = publish_keyed(&c, "project.updated", "shop", "project-1").await;
    let dead = publish_keyed(&c, "project.created", "shop", "project-1").await;
    c.execute("UPDATE postbox.events SET fanout_pending = false", &[])
        .await
        .unwrap();
    keyed_delivery(&c, hook, stale, "retrying").await;
    let dead_letter = keyed_delivery(&c, hook, dead, "held").await;
    c.execute(
        "UPDATE postbox.deliveries SET status = 'failed', completed_at = now() WHERE id = $1",
        &[&dead_letter],
    )
    .await
    .unwrap();
    publish_superseding(&c, "project-1").await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'cancelled'"
        )
        .await,
        1
    );

    let config = postbox::config::MaintenanceConfig {
        retention_success: Duration::from_secs(86400),
        retention_failed: Duration::from_secs(30 * 86400),
        ..Default::default()
    };
    let later = chrono::Utc::now() + chrono::TimeDelta::days(2);
    postbox::maintenance::run_once_at(
        &db.store(),
        &config,
        later,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let left: Vec<String> = column(&c, "SELECT status::text FROM postbox.deliveries").await;
    assert_eq!(
        left,
        ["failed"],
        "the cancelled delivery went, the dead letter stays"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.webhooks WHERE last_success_at IS NOT NULL"
        )
        .await,
        0,
        "a cancelled delivery is not a success"
    );
}

#[tokio::test]
async fn the_portal_sets_the_ordering_policy_and_shows_held_and_cancelled_deliveries() {
    use crate::portal_support::PortalSession;

    let api = Api::start().await;
    let s = PortalSession::open(&api, "shop", false).await;
    let id = s
        .create(&api, "hook", "http://127.0.0.1:9/hook", &["*"])
        .await;
    let (_, page) = s.get(&format!("/portal/endpoints/{id}")).await;
    assert!(
        page.contains("Ordered events") && page.contains("block:"),
        "{page}"
    );
    let (_, form) = s.get(&format!("/portal/endpoints/{id}/edit")).await;
    assert!(form.contains(r#"name="ordering_policy""#), "{form}");

    let edit = |policy: &'static str| {
        let (s, id) = (&s, &id);
        async move {
            s.post(
                &format!("/portal/endpoints/{id}/edit"),
                &[
                    ("name", "hook"),
                    ("url", "http://127.0.0.1:9/hook"),
                    ("events", "*"),
                    ("max_retries", "3"),
                    ("retry_delay", "60"),
                    ("ordering_policy", policy),
                    ("active", "1"),
                ],
            )
            .await
        }
    };
    let (status, _, form) = edit("sometimes").await;
    assert_eq!(status, 400, "{form}");
    assert!(
        form.contains("orderingPolicy:") && form.contains("aria-invalid"),
        "{form}"
    );
    let (status, _, _) = edit("skip_failed").await;
    assert_eq!(status, 303);
    let (_, w) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}"),
            Some(&api.token("shop")),
            None,
        )
        .await;
    assert_eq!(w["data"]["orderingPolicy"], "skip_failed");
    let (_, page) = s.get(&format!("/portal/endpoints/{id}")).await;
    assert!(page.contains("skip failed:"), "{page}");

    // A held delivery and a cancelled one, in the log and on their own page.
    let c = api.db.client().await;
    let hook: Uuid = id.parse().unwrap();
    let first = publish_keyed(&c, "project.updated", "shop", "project-7").await;
    let second = publish_keyed(&c, "project.created", "shop", "project-7").await;
    c.execute("UPDATE postbox.events SET fanout_pending = false", &[])
        .await
        .unwrap();
    let pending = keyed_delivery(&c, hook, first, "pending").await;
    let held = keyed_delivery(&c, hook, second, "held").await;
    publish_superseding(&c, "project-7").await;
    for (status, row) in [("held", held), ("cancelled", pending)] {
        let (code, log) = s
            .get(&format!(
                "/portal/endpoints/{id}/deliveries?status={status}"
            ))
            .await;
        assert_eq!(code, 200, "{log}");
        assert!(
            log.contains(&format!(r#"class="badge s-{status}""#)),
            "{status}: {log}"
        );
        assert!(log.contains(&row.to_string()), "{status}: {log}");
        let (code, one) = s
            .get(&format!("/portal/endpoints/{id}/deliveries/{row}"))
            .await;
        assert_eq!(code, 200, "{one}");
        assert!(one.contains("project-7"), "the ordering key: {one}");
    }
    let (_, one) = s
        .get(&format!("/portal/endpoints/{id}/deliveries/{pending}"))
        .await;
    assert!(one.contains("superseded by event"), "{one}");
    let (_, one) = s
        .get(&format!("/portal/endpoints/{id}/deliveries/{held}"))
        .await;
    assert!(
        one.contains("behind an earlier event of its ordering key"),
        "{one}"
    );
}
