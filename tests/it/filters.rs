//! Payload filters (SPEC 7.3): evaluated inside the fan-out, so an event
//! that does not match gets no delivery row at all; refused with a reason
//! by the API and by SQL; tried without sending through
//! `POST /api/webhooks/filter-test`.

use std::time::Duration;

use postbox::dispatch::Dispatcher;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api_support::Api;
use crate::support::*;

/// The `n` of each event that has a delivery row for `webhook`, sorted.
async fn delivered(c: &tokio_postgres::Client, webhook: Uuid) -> Vec<i64> {
    let rows = c
        .query(
            "SELECT (e.payload->>'n')::bigint FROM postbox.deliveries d
             JOIN postbox.events e ON e.id = d.event_id
             WHERE d.webhook_id = $1 ORDER BY 1",
            &[&webhook],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn only_matching_events_get_a_delivery_row() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (plain, _) = NewWebhook::new("shop", rx.url(), &["*"]).insert(&c).await;
    let project = NewWebhook {
        filter: Some(json!({"contains": {"projectId": 42}})),
        ..NewWebhook::new("shop", rx.url(), &["*"])
    }
    .insert(&c)
    .await
    .0;
    let big_eur = NewWebhook {
        filter: Some(json!({"path": "$.amount > 1000 && $.currency == \"EUR\""})),
        ..NewWebhook::new("shop", rx.url(), &["*"])
    }
    .insert(&c)
    .await
    .0;
    let both = NewWebhook {
        filter: Some(json!({"contains": {"projectId": 42}, "path": "$.amount > 1000"})),
        ..NewWebhook::new("shop", rx.url(), &["*"])
    }
    .insert(&c)
    .await
    .0;
    let events = [
        json!({"n": 1, "projectId": 42, "amount": 5}),
        json!({"n": 2, "projectId": 7, "amount": 5000, "currency": "EUR"}),
        json!({"n": 3, "projectId": 42, "amount": 5000, "currency": "USD"}),
        json!({"n": 4, "projectId": 42, "amount": 1001, "currency": "EUR", "extra": [1]}),
        // The path cannot compare a string with a number: no match, no error.
        json!({"n": 5, "projectId": "42", "amount": "lots", "currency": "EUR"}),
        json!({"n": 6}),
    ];
    for e in &events {
        publish(&c, "payment.succeeded", e.clone(), "shop").await;
    }
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    assert_eq!(delivered(&c, plain).await, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(delivered(&c, project).await, vec![1, 3, 4]);
    assert_eq!(delivered(&c, big_eur).await, vec![2, 4]);
    assert_eq!(delivered(&c, both).await, vec![3, 4]);
    // Every event was fanned out (none left behind by a filter).
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE fanout_pending"
        )
        .await,
        0
    );
    let got = rx.wait_for(6 + 3 + 2 + 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 13);
}

#[tokio::test]
async fn sql_writers_get_the_reason_for_a_bad_filter() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (id, _) = NewWebhook::new("shop", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    for (filter, reason) in [
        (json!({"path": "$.amount >"}), "not a valid SQL/JSON path"),
        (json!({"path": "$.amount"}), "must be a predicate"),
        // A variable would fail the fan-out for a matching payload.
        (
            json!({"path": "$.amount > 1 && $limit > 1"}),
            "must not use variables",
        ),
        (json!({"contains": [1]}), "\"contains\" must be an object"),
        (json!({"where": 1}), "unknown key"),
        (json!("x"), "must be an object"),
    ] {
        let err = c
            .execute(
                "UPDATE postbox.webhooks SET filter = $2 WHERE id = $1",
                &[&id, &filter],
            )
            .await
            .unwrap_err();
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(db_err.code().code(), "23514", "{filter}");
        assert!(
            db_err.message().contains("postbox: webhook filter")
                && db_err.message().contains(reason),
            "{filter}: {}",
            db_err.message()
        );
    }
}

#[tokio::test]
async fn the_api_takes_a_filter_refuses_a_bad_one_and_tests_one() {
    let api = Api::start().await;
    let t = api.token("shop");
    let made = api
        .create(
            "shop",
            json!({"name": "big", "url": "http://127.0.0.1:9/", "events": ["*"],
                   "filter": {"path": "$.amount > 1000"}}),
        )
        .await;
    assert_eq!(made["filter"], json!({"path": "$.amount > 1000"}));
    let id = made["id"].as_str().unwrap().to_string();
    for (filter, field, words) in [
        (
            json!({"path": "$.amount >"}),
            "filter",
            "not a valid SQL/JSON path",
        ),
        (json!({"path": "$.amount"}), "filter", "must be a predicate"),
        (
            json!({"path": "$.amount > 1 && $x > 1"}),
            "filter",
            "must not use variables",
        ),
        (json!({"path": 5}), "filter.path", "must be a string"),
        (
            json!({"contains": "x"}),
            "filter.contains",
            "must be an object",
        ),
        (json!({"where": 1}), "filter.where", "not a filter key"),
        (json!({}), "filter", "must be null or an object"),
        (json!([1]), "filter", "must be null or an object"),
    ] {
        let (s, j) = api
            .call(
                "PUT",
                &format!("/api/webhooks/{id}"),
                Some(&t),
                Some(json!({ "filter": filter })),
            )
            .await;
        assert_eq!(s, 400, "{filter}: {j}");
        let text = j["error"].to_string();
        assert!(
            text.contains(field) && text.contains(words),
            "{filter}: {j}"
        );
    }
    // Cleared with null.
    let (s, j) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&t),
            Some(json!({"filter": null})),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["filter"], Value::Null);

    let test = |filter: Value, data: Value| {
        let api = &api;
        let t = t.clone();
        async move {
            let (s, j) = api
                .call(
                    "POST",
                    "/api/webhooks/filter-test",
                    Some(&t),
                    Some(json!({"filter": filter, "data": data})),
                )
                .await;
            (s, j)
        }
    };
    let f =
        json!({"contains": {"projectId": 42}, "path": "$.amount > 1000 && $.currency == \"EUR\""});
    let (s, j) = test(
        f.clone(),
        json!({"projectId": 42, "amount": 1200, "currency": "EUR"}),
    )
    .await;
    assert_eq!((s, &j["data"]["matches"]), (200, &json!(true)), "{j}");
    let (s, j) = test(f.clone(), json!({"projectId": 42, "amount": 12})).await;
    assert_eq!((s, &j["data"]["matches"]), (200, &json!(false)), "{j}");
    let (s, j) = test(f, json!({"projectId": 42, "amount": "a lot"})).await;
    assert_eq!((s, &j["data"]["matches"]), (200, &json!(false)), "{j}");
    let (s, j) = test(json!({"path": "$.a +"}), json!({})).await;
    assert_eq!(s, 400, "{j}");
    let (s, j) = test(json!({"path": "$.a > 1"}), json!([1])).await;
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].to_string().contains("data"), "{j}");
    let (s, j) = test(json!(null), json!({"x": 1})).await;
    assert_eq!((s, &j["data"]["matches"]), (200, &json!(true)), "{j}");
    // No token, no test.
    let (s, _) = api
        .call(
            "POST",
            "/api/webhooks/filter-test",
            None,
            Some(json!({"filter": null, "data": {}})),
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_filter_is_tried_on_the_webhooks_recent_events() {
    let api = Api::start().await;
    let t = api.token("shop");
    let made = api
        .create(
            "shop",
            json!({"name": "all", "url": "http://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_string();
    let c = api.db.client().await;
    for n in 1..=3 {
        publish(
            &c,
            "payment.succeeded",
            json!({"n": n, "amount": n * 1000}),
            "shop",
        )
        .await;
    }
    // Fan out (the endpoint refuses: the rows stay, retrying).
    Dispatcher::new(api.db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let (s, j) = api
        .call(
            "POST",
            "/api/webhooks/filter-test",
            Some(&t),
            Some(json!({"filter": {"path": "$.amount > 1500"}, "webhookId": id})),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["matches"], Value::Null, "no sample given");
    let recent: Vec<bool> = j["data"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["matches"].as_bool().unwrap())
        .collect();
    assert_eq!(recent, [true, true, false], "newest first: n = 3, 2, 1");
    assert_eq!(j["data"]["recent"][0]["type"], "payment.succeeded");
    // Another owner's webhook is not found.
    let (s, j) = api
        .call(
            "POST",
            "/api/webhooks/filter-test",
            Some(&api.token("other")),
            Some(json!({"filter": null, "webhookId": id})),
        )
        .await;
    assert_eq!(s, 404, "{j}");
    // Neither a sample nor a webhook: nothing to test.
    let (s, j) = api
        .call(
            "POST",
            "/api/webhooks/filter-test",
            Some(&t),
            Some(json!({"filter": null})),
        )
        .await;
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].to_string().contains("data"), "{j}");
}

#[tokio::test]
async fn a_path_that_errors_on_one_payload_does_not_stop_the_fan_out() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    // A date compared with a timestamp with a zone: an error for `@@`.
    let (dated, _) = NewWebhook {
        filter: Some(json!({"path": "$.day.datetime() < \"2026-01-01T00:00:00+00\".datetime()"})),
        ..NewWebhook::new("shop", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let (plain, _) = NewWebhook::new("shop", rx.url(), &["*"]).insert(&c).await;
    for (n, day) in [(1, "2025-06-01"), (2, "2027-06-01"), (3, "not a date")] {
        publish(&c, "payment.succeeded", json!({"n": n, "day": day}), "shop").await;
    }
    Dispatcher::new(db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    assert_eq!(delivered(&c, plain).await, vec![1, 2, 3]);
    assert_eq!(delivered(&c, dated).await, vec![1]);
}
