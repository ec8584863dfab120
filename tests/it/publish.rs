//! The SQL interface: publish, plain INSERT, idempotency, refusals, rollback.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn publish_returns_an_id_and_a_plain_insert_is_equivalent() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = publish(
        &c,
        "project.updated",
        json!({"id": 42, "name": "Atlas"}),
        "user_7",
    )
    .await;
    c.execute(
        "INSERT INTO postbox.events (event_type, owner_id, payload) VALUES ('project.created', 'user_7', '{\"id\": 43}')",
        &[],
    )
    .await
    .unwrap();
    let rows = c
        .query(
            "SELECT id, event_type, owner_id, payload FROM postbox.events ORDER BY event_type",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let updated: uuid::Uuid = rows[1].get(0);
    assert_eq!(updated, id);
    let payload: serde_json::Value = rows[1].get(3);
    assert_eq!(payload, json!({"id": 42, "name": "Atlas"}));
}

#[tokio::test]
async fn a_repeated_idempotency_key_adds_nothing_and_returns_the_first_id() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let q = "SELECT postbox.publish('payment.succeeded', $1, 'user_1', 'key-1')";
    let first: uuid::Uuid = c.query_one(q, &[&json!({"n": 1})]).await.unwrap().get(0);
    let second: uuid::Uuid = c.query_one(q, &[&json!({"n": 2})]).await.unwrap().get(0);
    assert_eq!(first, second);
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 1);
    // The same key for another owner is another event.
    let other: uuid::Uuid = c
        .query_one(
            "SELECT postbox.publish('payment.succeeded', '{}', 'user_2', 'key-1')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(other, first);
}

#[tokio::test]
async fn bad_publishes_raise_a_clear_error_in_the_producers_transaction() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let cases = [
        (
            "project.renamed",
            json!({"a": 1}),
            "unknown event type \"project.renamed\"",
        ),
        (
            "project.updated",
            json!([1, 2]),
            "must be a JSON object, not array",
        ),
        (
            "project.updated",
            json!("text"),
            "must be a JSON object, not string",
        ),
        (
            "project.updated",
            json!({"blob": "x".repeat(1_100_000)}),
            "the limit is 1 MiB",
        ),
    ];
    for (ty, payload, expected) in cases {
        let tx = c.transaction().await.unwrap();
        tx.execute("CREATE TEMP TABLE IF NOT EXISTS business (n int)", &[])
            .await
            .unwrap();
        tx.execute("INSERT INTO business VALUES (1)", &[])
            .await
            .unwrap();
        let err = tx
            .query_one("SELECT postbox.publish($1, $2, 'user_1')", &[&ty, &payload])
            .await
            .expect_err("must raise");
        let msg = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(msg.contains(expected), "{ty}: got {msg:?}");
        drop(tx);
    }
    // A payload of exactly the limit passes.
    let exact = format!("{{\"b\": \"{}\"}}", "x".repeat(1_048_576 - 9));
    c.execute(
        "SELECT postbox.publish('project.updated', $1::text::jsonb, 'user_1')",
        &[&exact],
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 1);
    // Plain INSERT is refused the same way.
    let err = c
        .execute("INSERT INTO postbox.events (event_type, owner_id, payload) VALUES ('nope.nope', 'u', '{}')", &[])
        .await
        .unwrap_err();
    assert!(err
        .as_db_error()
        .unwrap()
        .message()
        .contains("unknown event type"));
}

#[tokio::test]
async fn delivery_status_enum_round_trips() {
    use postbox::store::DeliveryStatus;
    let db = TestDb::new().await;
    let c = db.client().await;
    let labels: Vec<String> = c
        .query(
            "SELECT unnest(enum_range(NULL::postbox.delivery_status))::text",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        labels,
        DeliveryStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
    );
    for status in DeliveryStatus::ALL {
        let back: DeliveryStatus = c
            .query_one("SELECT $1::postbox.delivery_status", &[&status])
            .await
            .unwrap()
            .get(0);
        assert_eq!(back, status);
    }
}

#[tokio::test]
async fn the_catalogue_holds_the_23_types_plus_webhook_test() {
    let db = TestDb::new().await;
    let c = db.client().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.event_types").await,
        24
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.event_types WHERE name = 'webhook.test'"
        )
        .await,
        1
    );
}
