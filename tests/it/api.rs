//! The management API through real HTTP against a real database: every
//! route's success path, the auth rules, and tenant isolation.

use std::time::Duration;

use postbox::dispatch::Dispatcher;
use postbox::signing::{verify, SigningKey};
use serde_json::{json, Value};

use crate::api_support::*;
use crate::support::*;

fn hook(url: &str) -> Value {
    json!({"name": "orders", "url": url, "events": ["project.*", "user.created"]})
}

#[tokio::test]
async fn webhook_crud_round_trip_shows_the_secret_only_on_create() {
    let api = Api::start().await;
    let t = api.token("user_7");
    let created = api
        .create(
            "user_7",
            json!({"name": "orders", "url": "http://127.0.0.1:9/hook", "events": ["*"],
                   "description": "d", "headers": {"X-Api-Key": "k"}, "maxRetries": 5, "retryDelay": 30}),
        )
        .await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["maxRetries"], 5);
    assert_eq!(created["retryDelay"], 30);
    assert_eq!(created["active"], true);
    assert_eq!(created["verified"], false);
    assert_eq!(created["headers"], json!({"x-api-key": "k"}));
    let id = created["id"].as_str().unwrap().to_string();

    let (s, list) = api.call("GET", "/api/webhooks", Some(&t), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        list["pagination"],
        json!({"page": 1, "limit": 20, "total": 1, "totalPages": 1})
    );
    assert!(list["data"][0].get("secret").is_none());

    let (s, one) = api
        .call("GET", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, 200);
    assert!(one["data"].get("secret").is_none());
    assert_eq!(one["data"]["recentDeliveries"], json!([]));
    assert_eq!(one["data"]["disabledAt"], Value::Null);

    // Disabled by Postbox; setting active again clears the reason.
    api.db
        .client()
        .await
        .execute(
            "UPDATE postbox.webhooks SET active = false, disabled_at = now(), disabled_reason = 'gone'",
            &[],
        )
        .await
        .unwrap();
    let (s, upd) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&t),
            Some(json!({"name": "renamed", "active": true, "description": null, "events": ["user.*"]})),
        )
        .await;
    assert_eq!(s, 200, "{upd}");
    let w = &upd["data"];
    assert_eq!(
        (w["name"].as_str(), w["active"].as_bool()),
        (Some("renamed"), Some(true))
    );
    assert_eq!(
        (w["disabledAt"].clone(), w["disabledReason"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(w["description"], Value::Null);
    assert_eq!(w["events"], json!(["user.*"]));
    assert_eq!(w["maxRetries"], 5, "untouched fields keep their value");
    assert!(w.get("secret").is_none());

    let (s, del) = api
        .call("DELETE", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!((s, del["data"]["deleted"].clone()), (200, json!(true)));
    let (s, gone) = api
        .call("GET", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, 404);
    assert!(is_error_envelope(&gone));
}

#[tokio::test]
async fn auth_rules_401_403_and_admin() {
    let api = Api::start().await;
    let now = chrono::Utc::now().timestamp();
    let expired =
        postbox::api::auth::mint(SECRET, "u", false, Duration::from_secs(1), now - 600).unwrap();
    let foreign =
        postbox::api::auth::mint("other-key", "u", true, Duration::from_secs(60), now).unwrap();
    for bad in [
        None,
        Some("garbage"),
        Some(expired.as_str()),
        Some(foreign.as_str()),
        Some(""),
    ] {
        let (s, j) = api.call("GET", "/api/webhooks", bad, None).await;
        assert_eq!(s, 401, "{bad:?}");
        assert!(is_error_envelope(&j));
    }
    let (s, _) = api
        .raw(
            "GET",
            "/api/webhooks",
            &[("authorization", "Basic dTpw")],
            vec![],
        )
        .await;
    assert_eq!(s, 401);
    let user = api.token("u");
    for (m, p) in [
        ("GET", "/api/webhooks/queue/stats"),
        ("POST", "/api/webhooks/queue/pause"),
        ("POST", "/api/webhooks/queue/resume"),
        ("POST", "/api/webhooks/queue/retry-failed"),
    ] {
        let (s, j) = api.call(m, p, Some(&user), None).await;
        assert_eq!(s, 403, "{m} {p}");
        assert_eq!(j["error"]["code"], "FORBIDDEN");
        let (s, _) = api.call(m, p, None, None).await;
        assert_eq!(s, 401, "{m} {p} without a token");
    }
    let (s, stats) = api
        .call("GET", "/api/webhooks/queue/stats", Some(&api.admin()), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(stats["data"]["isPaused"], false);
    // The catalogue needs a token like every /api route; the document does not.
    let (s, _) = api.call("GET", "/api/webhooks/events", None, None).await;
    assert_eq!(s, 401);
    let (s, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
async fn another_owners_ids_are_404_on_every_route() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let a = api.create("alice", hook(&rx.url())).await;
    let id = a["id"].as_str().unwrap();
    let c = api.db.client().await;
    publish(&c, "project.created", json!({"n": 1}), "alice").await;
    Dispatcher::new(api.db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let delivery: uuid::Uuid = c
        .query_one("SELECT id FROM postbox.deliveries", &[])
        .await
        .unwrap()
        .get(0);
    let bob = api.token("bob");
    let routes = [
        ("GET", format!("/api/webhooks/{id}"), None),
        (
            "PUT",
            format!("/api/webhooks/{id}"),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", format!("/api/webhooks/{id}"), None),
        (
            "POST",
            format!("/api/webhooks/{id}/regenerate-secret"),
            None,
        ),
        ("GET", format!("/api/webhooks/{id}/deliveries"), None),
        (
            "POST",
            format!("/api/webhooks/{id}/deliveries/{delivery}/retry"),
            None,
        ),
        ("POST", format!("/api/webhooks/{id}/test"), None),
        ("GET", format!("/api/webhooks/{id}/stats"), None),
    ];
    for (m, p, body) in routes {
        let (s, j) = api.call(m, &p, Some(&bob), body).await;
        assert_eq!(s, 404, "{m} {p}: {j}");
        assert!(is_error_envelope(&j));
    }
    let (_, list) = api.call("GET", "/api/webhooks", Some(&bob), None).await;
    assert_eq!(list["data"], json!([]));
    // Alice's webhook is untouched and nothing extra was sent.
    let (s, mine) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}"),
            Some(&api.token("alice")),
            None,
        )
        .await;
    assert_eq!((s, mine["data"]["name"].clone()), (200, json!("orders")));
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn test_send_is_signed_recorded_and_reports_the_outcome() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let w = api.create("u", hook(&rx.url())).await;
    let (id, secret) = (w["id"].as_str().unwrap(), w["secret"].as_str().unwrap());
    let t = api.token("u");
    let (s, res) = api
        .call("POST", &format!("/api/webhooks/{id}/test"), Some(&t), None)
        .await;
    assert_eq!(s, 200, "{res}");
    let r = &res["data"];
    assert_eq!(
        (r["success"].clone(), r["statusCode"].clone()),
        (json!(true), json!(200))
    );
    assert!(r["durationMs"].is_number());
    let got = rx.all();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.header("x-webhook-event"), "webhook.test");
    assert_eq!(
        req.header("x-webhook-delivery"),
        r["deliveryId"].as_str().unwrap()
    );
    assert_eq!(req.header("x-webhook-attempt"), "1");
    let key = SigningKey::from_secret(secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    verify(
        &key,
        Some(req.header("webhook-id")),
        Some(req.header("webhook-timestamp")),
        Some(req.header("webhook-signature")),
        &req.body,
        now,
        300,
    )
    .unwrap();
    assert_eq!(req.json()["data"]["webhookId"], json!(id));
    // Recorded as a delivery with its attempt; the webhook is now verified.
    let (_, hist) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(hist["data"][0]["status"], "success");
    assert_eq!(hist["data"][0]["eventType"], "webhook.test");
    let (_, one) = api
        .call("GET", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(one["data"]["verified"], true);

    // A failing endpoint, on an inactive webhook: still sent, reported, final.
    let bad = Receiver::start(std::sync::Arc::new(|_| Answer::status(500))).await;
    let (s, _) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&t),
            Some(json!({"url": bad.url(), "active": false})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, res) = api
        .call("POST", &format!("/api/webhooks/{id}/test"), Some(&t), None)
        .await;
    assert_eq!(
        (
            res["data"]["success"].clone(),
            res["data"]["statusCode"].clone()
        ),
        (json!(false), json!(500))
    );
    assert_eq!(bad.count(), 1);
    let (_, failed) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries?status=failed"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(failed["pagination"]["total"], 1);
}

#[tokio::test]
async fn rotation_grace_period_signs_with_both_secrets() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let w = api.create("u", hook(&rx.url())).await;
    let (id, old) = (
        w["id"].as_str().unwrap(),
        w["secret"].as_str().unwrap().to_string(),
    );
    let t = api.token("u");
    let (s, rot) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/regenerate-secret"),
            Some(&t),
            Some(json!({"graceSeconds": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{rot}");
    let new = rot["data"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rot["data"]["previousSecretExpiresAt"].is_string());

    // A delivery through the dispatcher during the grace period.
    let c = api.db.client().await;
    publish(&c, "project.updated", json!({"id": 1}), "u").await;
    Dispatcher::new(api.db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let req = &rx.all()[0];
    let entries: Vec<&str> = req.header("webhook-signature").split(' ').collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let now = chrono::Utc::now().timestamp();
    let verifies = |secret: &str, entry: &str| {
        verify(
            &SigningKey::from_secret(secret).unwrap(),
            Some(req.header("webhook-id")),
            Some(req.header("webhook-timestamp")),
            Some(entry),
            &req.body,
            now,
            300,
        )
        .is_ok()
    };
    assert!(entries.iter().all(|e| e.starts_with("v1,")));
    assert!(verifies(&new, entries[0]) && !verifies(&old, entries[0]));
    assert!(verifies(&old, entries[1]) && !verifies(&new, entries[1]));

    // No grace: the old secret stops at once (empty body allowed).
    let (s, rot) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/regenerate-secret"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        (s, rot["data"]["previousSecretExpiresAt"].clone()),
        (200, Value::Null)
    );
    let (_, res) = api
        .call("POST", &format!("/api/webhooks/{id}/test"), Some(&t), None)
        .await;
    assert_eq!(res["data"]["success"], true);
    let last = rx.all().pop().unwrap();
    assert_eq!(last.header("webhook-signature").split(' ').count(), 1);
}

#[tokio::test]
async fn history_stats_and_retry_of_one_delivery() {
    let api = Api::start().await;
    let rx = Receiver::start(std::sync::Arc::new(|_| Answer::status(500))).await;
    let mut body = hook(&rx.url());
    body["maxRetries"] = json!(0);
    let w = api.create("u", body).await;
    let id = w["id"].as_str().unwrap();
    let t = api.token("u");
    for i in 0..3 {
        let (s, p) = api
            .call(
                "POST",
                "/api/events",
                Some(&t),
                Some(json!({"type": "project.created", "data": {"i": i}})),
            )
            .await;
        assert_eq!(s, 202, "{p}");
    }
    Dispatcher::new(api.db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let (s, page) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries?page=2&limit=2&status=failed"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        page["pagination"],
        json!({"page": 2, "limit": 2, "total": 3, "totalPages": 2})
    );
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, all) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries"),
            Some(&t),
            None,
        )
        .await;
    let created: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["createdAt"].as_str().unwrap())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "newest first");

    let (_, stats) = api
        .call("GET", &format!("/api/webhooks/{id}/stats"), Some(&t), None)
        .await;
    let st = &stats["data"];
    assert_eq!(
        (
            st["total"].clone(),
            st["failed"].clone(),
            st["success"].clone()
        ),
        (json!(3), json!(3), json!(0))
    );
    assert_eq!(st["successRate"], 0.0);
    assert!(st["averageDurationMs"].is_number());
    assert!(st["lastDeliveryAt"].is_string());

    let did = all["data"][0]["id"].as_str().unwrap();
    let (s, r) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/deliveries/{did}/retry"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["data"]["status"].clone(), r["data"]["attempts"].clone()),
        (json!("pending"), json!(1))
    );
    assert_eq!(r["data"]["completedAt"], Value::Null);
    // The retry is one more attempt, counted on.
    Dispatcher::new(api.db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    assert_eq!(rx.count(), 4);
    let (_, r) = api
        .call(
            "GET",
            &format!("/api/webhooks/{id}/deliveries?status=failed&limit=100"),
            Some(&t),
            None,
        )
        .await;
    assert!(r["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["attempts"] == 2));

    // A delivery in flight cannot be retried.
    let c = api.db.client().await;
    c.execute(
        "UPDATE postbox.deliveries SET status = 'sending', lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        &[&uuid::Uuid::parse_str(did).unwrap()],
    )
    .await
    .unwrap();
    let (s, j) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/deliveries/{did}/retry"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, j["error"]["code"].clone()), (409, json!("CONFLICT")));
    let missing = uuid::Uuid::new_v4();
    let (s, _) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/deliveries/{missing}/retry"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn queue_pause_resume_and_retry_failed() {
    let api = Api::start().await;
    let admin = api.admin();
    let rx = Receiver::start(std::sync::Arc::new(|_| Answer::status(500))).await;
    let mut body = hook(&rx.url());
    body["maxRetries"] = json!(0);
    let w = api.create("u", body).await;
    let c = api.db.client().await;
    publish(&c, "project.created", json!({}), "u").await;
    let d = Dispatcher::new(api.db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();

    let (s, p) = api
        .call("POST", "/api/webhooks/queue/pause", Some(&admin), None)
        .await;
    assert_eq!((s, p["data"]["isPaused"].clone()), (200, json!(true)));
    let (s, r) = api
        .call(
            "POST",
            "/api/webhooks/queue/retry-failed",
            Some(&admin),
            Some(json!({"webhookId": w["id"]})),
        )
        .await;
    assert_eq!((s, r["data"]["count"].clone()), (200, json!(1)));
    let (_, st) = api
        .call("GET", "/api/webhooks/queue/stats", Some(&admin), None)
        .await;
    assert_eq!(st["data"]["isPaused"], true);
    assert_eq!(st["data"]["paused"], 1, "due work is held by the pause");
    assert_eq!(st["data"]["waiting"], 0);
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 1, "nothing is claimed while paused");

    let (s, _) = api
        .call("POST", "/api/webhooks/queue/resume", Some(&admin), None)
        .await;
    assert_eq!(s, 200);
    let (_, st) = api
        .call("GET", "/api/webhooks/queue/stats", Some(&admin), None)
        .await;
    assert_eq!(
        (
            st["data"]["isPaused"].clone(),
            st["data"]["waiting"].clone()
        ),
        (json!(false), json!(1))
    );
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 2);
    let (_, r) = api
        .call(
            "POST",
            "/api/webhooks/queue/retry-failed",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        r["data"]["count"], 1,
        "without webhookId: every failed delivery"
    );
}

#[tokio::test]
async fn publish_over_http_catalogue_and_idempotency() {
    let api = Api::start().await;
    let t = api.token("u");
    let (s, cat) = api
        .call("GET", "/api/webhooks/events", Some(&t), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(cat["data"].as_array().unwrap().len(), 24);
    assert!(cat["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "webhook.test" && e["description"].is_string()));

    let body = json!({"type": "user.created", "data": {"id": 1}, "idempotencyKey": "k1"});
    let (s, a) = api
        .call("POST", "/api/events", Some(&t), Some(body.clone()))
        .await;
    assert_eq!(s, 202, "{a}");
    let (_, b) = api.call("POST", "/api/events", Some(&t), Some(body)).await;
    assert_eq!(a["data"]["id"], b["data"]["id"]);
    let c = api.db.client().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE owner_id = 'u'"
        )
        .await,
        1
    );

    let (s, j) = api
        .call(
            "POST",
            "/api/events",
            Some(&t),
            Some(json!({"type": "nope.x", "data": {}})),
        )
        .await;
    assert_eq!(
        (s, j["error"]["details"][0]["field"].clone()),
        (400, json!("type"))
    );
    // Over 1 MiB once stored as jsonb text: the database's 54000 becomes 413.
    // 800 KB compact ("1,1,..."), 1.2 MB as jsonb text ("1, 1, ...").
    let items = vec![1u8; 400_000];
    let (s, j) = api
        .call(
            "POST",
            "/api/events",
            Some(&t),
            Some(json!({"type": "user.created", "data": {"items": items}})),
        )
        .await;
    assert!(s == 413, "{s} {j}");
    assert!(is_error_envelope(&j));
}

#[tokio::test]
async fn deleting_a_webhook_drops_its_queued_deliveries() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let w = api.create("u", hook(&rx.url())).await;
    let c = api.db.client().await;
    let admin = api.admin();
    api.call("POST", "/api/webhooks/queue/pause", Some(&admin), None)
        .await;
    publish(&c, "project.created", json!({}), "u").await;
    let d = Dispatcher::new(api.db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        1
    );
    let id = w["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/webhooks/{id}"),
            Some(&api.token("u")),
            None,
        )
        .await;
    assert_eq!(s, 200);
    api.call("POST", "/api/webhooks/queue/resume", Some(&admin), None)
        .await;
    d.run_once().await.unwrap();
    assert_eq!(rx.count(), 0);
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        0
    );
}

#[tokio::test]
async fn new_secrets_come_from_the_state_s_secret_source() {
    let db = TestDb::new().await;
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = issued.clone();
    let state = postbox::api::ApiState {
        new_secret: std::sync::Arc::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            format!("whsec_fixed{n}")
        }),
        ..api_state(db.store(), SECRET, true)
    };
    let api = Api::serve(db, state).await;
    let created = api.create("user_7", hook("http://127.0.0.1:9/hook")).await;
    assert_eq!(created["secret"], "whsec_fixed0");
    let id = created["id"].as_str().unwrap();
    let (status, rot) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/regenerate-secret"),
            Some(&api.token("user_7")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rot}");
    assert_eq!(rot["data"]["secret"], "whsec_fixed1");
    assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2);
}
