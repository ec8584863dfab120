//! The exact contract, at every entry point: what a client sends is what is
//! stored and delivered (numbers, URLs, idempotency keys), tokens are checked
//! by RFC 7519, and the catalogue's admin routes do what the docs say.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::api_support::{Api, SECRET};
use crate::support::*;

/// Every digit, on every path: the numbers of docs/WEBHOOKS.md "Payloads".
const EXACT: &str = r#"{"n": 18446744073709551616, "pi": 3.1415926535897932384626433832795, "neg": -9223372036854775809, "big": 123456789012345678901234567890, "huge": 1e400}"#;
const DIGITS: &[&str] = &[
    "18446744073709551616",
    "3.1415926535897932384626433832795",
    "-9223372036854775809",
    "123456789012345678901234567890",
];

fn has_every_digit(text: &str) {
    for d in DIGITS {
        assert!(text.contains(d), "{d} lost in {text}");
    }
    // 1e400 is kept as a value: Postgres writes it in plain decimal.
    assert!(text.contains(&format!("1{}", "0".repeat(400))), "{text}");
}

async fn stored(c: &tokio_postgres::Client, id: uuid::Uuid) -> String {
    c.query_one(
        "SELECT payload::text FROM postbox.events WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn numbers_keep_every_digit_over_http_the_cli_sql_and_delivery() {
    let api = Api::start().await;
    let c = api.db.client().await;
    let receiver = Receiver::ok().await;
    NewWebhook::new("num", receiver.url(), &["payment.succeeded"])
        .insert(&c)
        .await;
    // HTTP: the raw body, not a serde_json::Value built here.
    let res = api
        .http
        .post(format!("{}/api/events", api.base))
        .bearer_auth(crate::api_support::token("num", false))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"type": "payment.succeeded", "data": {EXACT}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await.unwrap();
    let id: uuid::Uuid = body["data"]["id"].as_str().unwrap().parse().unwrap();
    has_every_digit(&stored(&c, id).await);
    // The CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args(["publish", "payment.succeeded", EXACT, "--owner", "num"])
        .env("DATABASE_URL", api.db.url.as_str())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: uuid::Uuid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    has_every_digit(&stored(&c, id).await);
    // SQL.
    let row = c
        .query_one(
            &format!("SELECT postbox.publish('payment.succeeded', '{EXACT}', 'num')"),
            &[],
        )
        .await
        .unwrap();
    has_every_digit(&stored(&c, row.get(0)).await);
    // Delivery: the body each endpoint receives.
    let running = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    for r in &got {
        has_every_digit(&String::from_utf8_lossy(&r.body));
    }
    running.shutdown().await;
    // Beyond Postgres's numeric range: one rule on every path, a clear refusal.
    let (s, j) = api
        .call(
            "POST",
            "/api/events",
            Some(&api.token("num")),
            Some(
                serde_json::from_str(r#"{"type": "payment.succeeded", "data": {"x": 1e200000}}"#)
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(s, 400, "{j}");
    let err = c
        .query_one(
            "SELECT postbox.publish('payment.succeeded', '{\"x\": 1e200000}', 'num')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22003", "{err}");
}

#[tokio::test]
async fn postbox_receive_prints_numbers_unrounded() {
    let body = format!(r#"{{"id": "x", "type": "t", "timestamp": "now", "data": {EXACT}}}"#);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let printed = serde_json::to_string_pretty(&v["data"]).unwrap();
    for d in DIGITS {
        assert!(printed.contains(d), "{printed}");
    }
}

/// An HS256 token minted by PyJWT (installed by scripts/test), an
/// implementation independent of ours.
fn pyjwt(claims: serde_json::Value) -> String {
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv/bin/python");
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import jwt, json, sys; print(jwt.encode(json.loads(sys.argv[1]), sys.argv[2], algorithm='HS256'))",
            &claims.to_string(),
            SECRET,
        ])
        .output()
        .expect("run scripts/test: it installs PyJWT into .ci/venv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn tokens_are_checked_by_every_registered_claim() {
    let api = Api::start().await;
    let now = chrono::Utc::now().timestamp();
    let get = |t: String| {
        let api = &api;
        async move { api.call("GET", "/api/webhooks", Some(&t), None).await.0 }
    };
    assert_eq!(
        get(pyjwt(json!({"sub": "u", "exp": now + 7200}))).await,
        200
    );
    assert_eq!(
        get(pyjwt(
            json!({"sub": "u", "exp": now + 7200, "nbf": now + 3600})
        ))
        .await,
        401
    );
    assert_eq!(
        get(pyjwt(
            json!({"sub": "u", "exp": now + 7200, "nbf": now - 10})
        ))
        .await,
        200
    );
    assert_eq!(
        get(pyjwt(
            json!({"sub": "u", "exp": now + 7200, "iat": now + 3600})
        ))
        .await,
        401
    );
    assert_eq!(
        get(pyjwt(
            json!({"sub": "u", "exp": now + 7200, "iat": now + 30})
        ))
        .await,
        200
    );
    assert_eq!(
        get(pyjwt(json!({"sub": "u", "exp": now - 3600}))).await,
        401
    );
    // No audience configured: a token addressed to someone is refused.
    assert_eq!(
        get(pyjwt(json!({"sub": "u", "exp": now + 60, "aud": "x"}))).await,
        401
    );
}

#[tokio::test]
async fn an_operator_can_require_issuer_and_audience() {
    let db = TestDb::new().await;
    let state = postbox::api::ApiState {
        jwt_issuer: Some("https://auth.example".into()),
        jwt_audience: Some("postbox".into()),
        ..api_state(db.store(), SECRET, true)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        warp::serve(postbox::api::routes(state))
            .incoming(listener)
            .run(),
    );
    let now = chrono::Utc::now().timestamp();
    let http = reqwest::Client::new();
    for (claims, want) in [
        (
            json!({"sub": "u", "exp": now + 60, "iss": "https://auth.example", "aud": "postbox"}),
            200,
        ),
        (
            json!({"sub": "u", "exp": now + 60, "iss": "https://auth.example", "aud": ["a", "postbox"]}),
            200,
        ),
        (json!({"sub": "u", "exp": now + 60, "aud": "postbox"}), 401),
        (
            json!({"sub": "u", "exp": now + 60, "iss": "https://evil.example", "aud": "postbox"}),
            401,
        ),
        (
            json!({"sub": "u", "exp": now + 60, "iss": "https://auth.example"}),
            401,
        ),
        (
            json!({"sub": "u", "exp": now + 60, "iss": "https://auth.example", "aud": "other"}),
            401,
        ),
    ] {
        let s = http
            .get(format!("{base}/api/webhooks"))
            .bearer_auth(pyjwt(claims.clone()))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, want, "{claims}");
    }
    // `postbox token` mints what this API accepts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args(["token", "--sub", "u"])
        .env("POSTBOX_JWT_SECRET", SECRET)
        .env("POSTBOX_JWT_ISSUER", "https://auth.example")
        .env("POSTBOX_JWT_AUDIENCE", "postbox")
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let s = http
        .get(format!("{base}/api/webhooks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
}

#[tokio::test]
async fn urls_a_parser_would_repair_are_refused_by_the_api_and_the_dispatcher() {
    let api = Api::start().await;
    let t = api.token("u");
    for url in [
        "http:///path",
        "http://127.0.0.1\\hook",
        "http://127.0.0.1/a\tb",
        "http://%31%32%37.0.0.1/",
        "http://2130706433/",
        "http://127.0.0.1/a/../b",
        "http://u:p@127.0.0.1/",
    ] {
        let body = json!({"name": "n", "url": url, "events": ["*"]});
        let (s, j) = api
            .call("POST", "/api/webhooks", Some(&t), Some(body))
            .await;
        assert_eq!(s, 400, "{url}: {j}");
        assert_eq!(j["error"]["details"][0]["field"], "url", "{j}");
    }
    // A row written with SQL is checked before every attempt.
    let c = api.db.client().await;
    let receiver = Receiver::ok().await;
    let port = receiver.addr.port();
    let bad = format!("http:///127.0.0.1:{port}/hook");
    NewWebhook {
        max_retries: 0,
        ..NewWebhook::new("sqlurl", bad, &["payment.succeeded"])
    }
    .insert(&c)
    .await;
    publish(&c, "payment.succeeded", json!({}), "sqlurl").await;
    let running = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    wait_until("the delivery fails", Duration::from_secs(20), || {
        let c = &c;
        async move {
            count(c, "SELECT count(*) FROM postbox.deliveries WHERE status = 'failed' AND error_message LIKE 'invalid URL: %'").await == 1
        }
    })
    .await;
    running.shutdown().await;
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn a_plain_insert_of_a_repeated_key_adds_nothing_and_keeps_the_transaction() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let tx = c.transaction().await.unwrap();
    let insert = "INSERT INTO postbox.events (event_type, owner_id, payload, idempotency_key) VALUES ('payment.succeeded', 'u', $1, 'k') RETURNING id";
    let first = tx.query(insert, &[&json!({"n": 1})]).await.unwrap();
    assert_eq!(first.len(), 1);
    let again = tx.query(insert, &[&json!({"n": 2})]).await.unwrap();
    assert!(again.is_empty(), "a repeat inserts no row");
    let id: uuid::Uuid = tx
        .query_one(
            "SELECT postbox.publish('payment.succeeded', '{}', 'u', 'k')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, first[0].get::<_, uuid::Uuid>(0));
    tx.commit().await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 1);
    // A concurrent repeat waits for the first and then adds nothing.
    let (a, b) = (db.client().await, db.client().await);
    a.batch_execute("BEGIN").await.unwrap();
    a.execute(insert.replace("'k'", "'c'").as_str(), &[&json!({})])
        .await
        .unwrap();
    let second = tokio::spawn(async move {
        b.query(insert.replace("'k'", "'c'").as_str(), &[&json!({})])
            .await
            .map(|r| r.len())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), 0);
}

#[tokio::test]
async fn a_repeated_key_tells_the_caller_whether_the_payload_matched() {
    let api = Api::start().await;
    let t = api.token("u");
    let publish = |data: serde_json::Value| {
        let (api, t) = (&api, t.clone());
        async move {
            let body = json!({"type": "payment.succeeded", "data": data, "idempotencyKey": "k1"});
            api.call("POST", "/api/events", Some(&t), Some(body)).await
        }
    };
    let (s, first) = publish(json!({"n": 1})).await;
    assert_eq!(
        (
            s,
            &first["data"]["duplicate"],
            &first["data"]["payloadMatches"]
        ),
        (202, &json!(false), &json!(true))
    );
    let (_, same) = publish(json!({"n": 1.0})).await;
    assert_eq!(
        (&same["data"]["duplicate"], &same["data"]["payloadMatches"]),
        (&json!(true), &json!(true))
    );
    let (_, other) = publish(json!({"n": 2})).await;
    assert_eq!(
        (
            &other["data"]["duplicate"],
            &other["data"]["payloadMatches"]
        ),
        (&json!(true), &json!(false))
    );
    assert_eq!(other["data"]["id"], first["data"]["id"]);
    // The CLI says so on stderr; stdout stays the first id.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args([
            "publish",
            "payment.succeeded",
            r#"{"n": 3}"#,
            "--owner",
            "u",
            "--idempotency-key",
            "k1",
        ])
        .env("DATABASE_URL", api.db.url.as_str())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        first["data"]["id"].as_str().unwrap()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another type or payload"));
}

#[tokio::test]
async fn admins_add_describe_and_retire_event_types() {
    let api = Api::start().await;
    let (admin, user) = (api.admin(), api.token("u"));
    let c = api.db.client().await;
    let body = json!({"type": "invoice.paid", "description": "An invoice was paid"});
    let (s, j) = api
        .call(
            "POST",
            "/api/webhooks/events",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (s, &j["data"]["type"]),
        (201, &json!("invoice.paid")),
        "{j}"
    );
    assert_eq!(
        api.call(
            "POST",
            "/api/webhooks/events",
            Some(&admin),
            Some(body.clone())
        )
        .await
        .0,
        409
    );
    assert_eq!(
        api.call(
            "POST",
            "/api/webhooks/events",
            Some(&user),
            Some(body.clone())
        )
        .await
        .0,
        403
    );
    let bad = json!({"type": "Invoice Paid"});
    assert_eq!(
        api.call("POST", "/api/webhooks/events", Some(&admin), Some(bad))
            .await
            .0,
        400
    );
    let (s, j) = api
        .call(
            "PUT",
            "/api/webhooks/events/invoice.paid",
            Some(&admin),
            Some(json!({"description": "paid"})),
        )
        .await;
    assert_eq!((s, &j["data"]["description"]), (200, &json!("paid")));
    // A subscriber, and an event stored before the type is retired.
    let receiver = Receiver::ok().await;
    NewWebhook::new("u", receiver.url(), &["invoice.paid"])
        .insert(&c)
        .await;
    publish(&c, "invoice.paid", json!({"before": true}), "u").await;
    assert_eq!(
        api.call(
            "DELETE",
            "/api/webhooks/events/invoice.paid",
            Some(&admin),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.call(
            "DELETE",
            "/api/webhooks/events/invoice.paid",
            Some(&admin),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api.call(
            "DELETE",
            "/api/webhooks/events/webhook.test",
            Some(&admin),
            None
        )
        .await
        .0,
        409
    );
    let (_, cat) = api
        .call("GET", "/api/webhooks/events", Some(&user), None)
        .await;
    assert!(!cat["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["type"] == "invoice.paid"));
    let pub_body = json!({"type": "invoice.paid", "data": {}});
    assert_eq!(
        api.call("POST", "/api/events", Some(&user), Some(pub_body))
            .await
            .0,
        400
    );
    let err = c
        .query_one("SELECT postbox.publish('invoice.paid', '{}', 'u')", &[])
        .await
        .unwrap_err();
    let msg = err.as_db_error().unwrap().message();
    assert!(msg.contains("retired"), "{msg}");
    // The stored event is still delivered.
    let running = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].json()["data"], json!({"before": true}));
    running.shutdown().await;
    // Adding it again reopens it.
    assert_eq!(
        api.call("POST", "/api/webhooks/events", Some(&admin), Some(body))
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn a_410_on_the_test_send_switches_the_webhook_off() {
    let api = Api::start().await;
    let t = api.token("u");
    let gone = Receiver::start(Arc::new(|_| Answer::status(410))).await;
    let body = json!({"name": "n", "url": gone.url(), "events": ["*"]});
    let (_, w) = api
        .call("POST", "/api/webhooks", Some(&t), Some(body))
        .await;
    let id = w["data"]["id"].as_str().unwrap().to_string();
    let (s, j) = api
        .call("POST", &format!("/api/webhooks/{id}/test"), Some(&t), None)
        .await;
    assert_eq!((s, &j["data"]["statusCode"]), (200, &json!(410)), "{j}");
    let (_, w) = api
        .call("GET", &format!("/api/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(w["data"]["active"], json!(false), "{w}");
    assert_eq!(
        w["data"]["disabledReason"],
        json!("endpoint answered 410 Gone")
    );
}
