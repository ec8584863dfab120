//! Incoming Stripe and Clerk webhooks: verified into `postbox.inbox` once,
//! everything else refused and nothing stored; and the consumption pattern of
//! docs/INBOX.md (exactly once, concurrent consumers, rollback).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use postbox::api::{routes, ApiState};
use postbox::inbound::stripe;
use postbox::signing::SigningKey;
use serde_json::Value;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::support::*;

const STRIPE_SECRET: &str = "whsec_P1ntffNTAqr3tEF5voZ75n1HEOanDh8r";
const CLERK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn state(db: &TestDb, stripe: Option<&str>, clerk: Option<&str>) -> ApiState {
    ApiState {
        stripe_webhook_secret: stripe.map(str::to_string),
        clerk_webhook_secret: clerk.map(str::to_string),
        ..api_state(db.store(), "test-jwt-secret", true)
    }
}

fn configured(db: &TestDb) -> ApiState {
    state(db, Some(STRIPE_SECRET), Some(CLERK_SECRET))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn post(
    state: ApiState,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> (u16, Value) {
    let mut req = warp::test::request().method("POST").path(path);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let resp = req.body(body.into()).reply(&routes(state)).await;
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (status, body)
}

/// Header name and value pairs of one request.
type Headers = Vec<(&'static str, String)>;

fn stripe_event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","object":"event","type":"customer.created","data":{{"object":{{"id":"cus_1","name":"Zoë 東京"}}}}}}"#
    )
}

fn stripe_headers(secret: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![(
        "stripe-signature",
        stripe::signature_header(secret, ts, body.as_bytes()),
    )]
}

fn clerk_headers(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = SigningKey::from_secret(secret).unwrap();
    vec![
        ("svix-id", id.to_string()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", key.sign(id, ts, body.as_bytes())),
    ]
}

async fn inbox(c: &tokio_postgres::Client) -> Vec<(String, String, String, Value)> {
    c.query(
        "SELECT source, external_id, event_type, payload FROM postbox.inbox ORDER BY received_at, external_id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// A connection LISTENing on postbox_inbox; yields each notification's payload.
/// The client must be kept alive for as long as notifications are wanted.
async fn listen(
    db: &TestDb,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut conn) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client.batch_execute("LISTEN postbox_inbox").await.unwrap();
    (client, rx)
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test]
async fn a_signed_stripe_event_is_stored_once_and_notified() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (_listener, mut notes) = listen(&db).await;
    let body = stripe_event("evt_1");
    let (status, answer) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["received"], true);
    assert_eq!(answer["success"], true);
    assert_eq!(answer["data"]["duplicate"], false);
    let rows = inbox(&c).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "stripe");
    assert_eq!(rows[0].1, "evt_1");
    assert_eq!(rows[0].2, "customer.created");
    assert_eq!(rows[0].3, serde_json::from_str::<Value>(&body).unwrap());
    let note = tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .expect("a NOTIFY on postbox_inbox")
        .unwrap();
    assert_eq!(note, "stripe");

    // The same event again (Stripe retries; or an attacker replays within 300 s): 200, nothing new.
    let (status, answer) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["received"], true);
    assert_eq!(answer["data"]["duplicate"], true);
    assert_eq!(inbox(&c).await.len(), 1);
    // A replay sends no second NOTIFY.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), notes.recv())
            .await
            .is_err(),
        "no NOTIFY for a duplicate"
    );
}

#[tokio::test]
async fn stripe_refusals_store_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let body = stripe_event("evt_bad");
    let t = now();
    let mut tampered = body.replace("cus_1", "cus_2");
    let forged = stripe_headers("whsec_not_the_secret", t, &body);
    let cases: Vec<(&str, Headers, String, u16, &str)> = vec![
        ("forged", forged, body.clone(), 401, "INVALID_SIGNATURE"),
        (
            "tampered",
            stripe_headers(STRIPE_SECRET, t, &body),
            std::mem::take(&mut tampered),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "stale",
            stripe_headers(STRIPE_SECRET, t - 400, &body),
            body.clone(),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "an hour in the future",
            stripe_headers(STRIPE_SECRET, t + 3600, &body),
            body.clone(),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "missing header",
            vec![],
            body.clone(),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "garbage header",
            vec![("stripe-signature", "garbage".into())],
            body.clone(),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "upper-case hex",
            vec![(
                "stripe-signature",
                stripe::signature_header(STRIPE_SECRET, t, body.as_bytes()).to_uppercase(),
            )],
            body.clone(),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "valid signature, not JSON",
            stripe_headers(STRIPE_SECRET, t, "not json"),
            "not json".into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "valid signature, no id",
            stripe_headers(STRIPE_SECRET, t, r#"{"type":"a.b"}"#),
            r#"{"type":"a.b"}"#.into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "valid signature, no type",
            stripe_headers(STRIPE_SECRET, t, r#"{"id":"evt_x"}"#),
            r#"{"id":"evt_x"}"#.into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "valid signature, NUL in a string (jsonb cannot hold it)",
            stripe_headers(
                STRIPE_SECRET,
                t,
                r#"{"id":"evt_nul","type":"a.b","x":"\u0000"}"#,
            ),
            r#"{"id":"evt_nul","type":"a.b","x":"\u0000"}"#.into(),
            400,
            "INVALID_PAYLOAD",
        ),
    ];
    for (name, headers, body, want, code) in cases {
        let (status, answer) = post(configured(&db), "/api/webhooks/stripe", &headers, body).await;
        assert_eq!(status, want, "{name}: {answer}");
        assert_error(&answer, code);
    }
    assert!(inbox(&c).await.is_empty());
}

#[tokio::test]
async fn stripe_accepts_a_small_clock_skew_ahead_and_keeps_big_numbers_exact() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let body = r#"{"id":"evt_skew","type":"invoice.paid","amount":123456789012345678901234567890}"#;
    let (status, _) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now() + 200, body),
        body,
    )
    .await;
    assert_eq!(status, 200);
    let amount: String = c
        .query_one("SELECT payload->>'amount' FROM postbox.inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(amount, "123456789012345678901234567890");
}

#[tokio::test]
async fn a_signed_clerk_event_is_stored_once_under_its_svix_id() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let body = r#"{"type":"user.created","object":"event","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"}}"#;
    let headers = clerk_headers(CLERK_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", now(), body);
    let (status, answer) = post(configured(&db), "/api/webhooks/clerk", &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["received"], true);
    let rows = inbox(&c).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.as_str()),
        ("clerk", "msg_p5jXN8AQM9LWM0D4loKWxJek", "user.created")
    );
    // Svix redelivers with the same svix-id and a fresh timestamp: stored once.
    let headers = clerk_headers(CLERK_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", now(), body);
    let (status, answer) = post(configured(&db), "/api/webhooks/clerk", &headers, body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"]["duplicate"], true);
    assert_eq!(inbox(&c).await.len(), 1);
    // The same id from the other source is a different event.
    let sbody = stripe_event("msg_p5jXN8AQM9LWM0D4loKWxJek");
    let (status, _) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &sbody),
        sbody,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(inbox(&c).await.len(), 2);
}

#[tokio::test]
async fn clerk_refusals_store_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let body = r#"{"type":"user.deleted","data":{"id":"user_1"}}"#;
    let t = now();
    let good = clerk_headers(CLERK_SECRET, "msg_1", t, body);
    let without = |name: &str| -> Vec<(&'static str, String)> {
        good.iter().filter(|(k, _)| *k != name).cloned().collect()
    };
    let other_secret = "whsec_".to_string() + &"A".repeat(43);
    let cases: Vec<(&str, Headers, &str, u16)> = vec![
        (
            "forged",
            clerk_headers(&other_secret, "msg_1", t, body),
            body,
            401,
        ),
        (
            "tampered",
            good.clone(),
            r#"{"type":"user.deleted","data":{"id":"user_2"}}"#,
            401,
        ),
        (
            "stale",
            clerk_headers(CLERK_SECRET, "msg_1", t - 400, body),
            body,
            401,
        ),
        (
            "future",
            clerk_headers(CLERK_SECRET, "msg_1", t + 400, body),
            body,
            401,
        ),
        ("no svix-id", without("svix-id"), body, 401),
        ("no svix-timestamp", without("svix-timestamp"), body, 401),
        ("no svix-signature", without("svix-signature"), body, 401),
        (
            "id swapped after signing",
            {
                let mut h = good.clone();
                h[0].1 = "msg_2".into();
                h
            },
            body,
            401,
        ),
        (
            "valid signature, not JSON",
            clerk_headers(CLERK_SECRET, "msg_3", t, "{nope"),
            "{nope",
            400,
        ),
        (
            "valid signature, no type",
            clerk_headers(CLERK_SECRET, "msg_4", t, r#"{"data":{}}"#),
            r#"{"data":{}}"#,
            400,
        ),
    ];
    for (name, headers, body, want) in cases {
        let (status, answer) = post(configured(&db), "/api/webhooks/clerk", &headers, body).await;
        assert_eq!(status, want, "{name}: {answer}");
        assert_eq!(answer["success"], false, "{name}");
    }
    assert!(inbox(&c).await.is_empty());
}

#[tokio::test]
async fn a_route_without_its_secret_answers_503_naming_the_variable() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let body = stripe_event("evt_unset");
    let (status, answer) = post(
        state(&db, None, None),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &body),
        body,
    )
    .await;
    assert_eq!(status, 503);
    assert_error(&answer, "SERVICE_UNAVAILABLE");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("STRIPE_WEBHOOK_SECRET"));
    let body = r#"{"type":"user.created"}"#;
    let (status, answer) = post(
        state(&db, Some(STRIPE_SECRET), None),
        "/api/webhooks/clerk",
        &clerk_headers(CLERK_SECRET, "msg_1", now(), body),
        body,
    )
    .await;
    assert_eq!(status, 503);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("CLERK_WEBHOOK_SECRET"));
    // A Clerk secret that is not a whsec_ secret is a configuration fault too; never echoed.
    let (status, answer) = post(
        state(&db, None, Some("sk_live_oops")),
        "/api/webhooks/clerk",
        &clerk_headers(CLERK_SECRET, "msg_1", now(), body),
        body,
    )
    .await;
    assert_eq!(status, 503);
    assert!(!answer.to_string().contains("sk_live_oops"));
    assert!(inbox(&c).await.is_empty());
}

#[tokio::test]
async fn bodies_over_1_mib_get_413_declared_or_streamed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let big = format!(
        r#"{{"id":"evt_big","type":"a.b","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let (status, answer) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &big),
        big.clone(),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_error(&answer, "PAYLOAD_TOO_LARGE");

    // Over real HTTP, chunked (no Content-Length): cut off while streaming.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        warp::serve(routes(configured(&db)))
            .incoming(listener)
            .run(),
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/webhooks/clerk"))
        .headers(
            clerk_headers(CLERK_SECRET, "msg_big", now(), &big)
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let answer: Value = resp.json().await.unwrap();
    assert_error(&answer, "PAYLOAD_TOO_LARGE");

    // Just under the limit passes.
    let fits = format!(
        r#"{{"id":"evt_fits","type":"a.b","pad":"{}"}}"#,
        "x".repeat(1024 * 1024 - 64)
    );
    assert!(fits.len() <= 1024 * 1024);
    let (status, _) = post(
        configured(&db),
        "/api/webhooks/stripe",
        &stripe_headers(STRIPE_SECRET, now(), &fits),
        fits,
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<String> = inbox(&c).await.into_iter().map(|r| r.1).collect();
    assert_eq!(ids, vec!["evt_fits".to_string()]);
}

#[tokio::test]
async fn the_routes_take_no_jwt_and_only_post() {
    let db = TestDb::new().await;
    let resp = warp::test::request()
        .method("GET")
        .path("/api/webhooks/stripe")
        .reply(&routes(configured(&db)))
        .await;
    assert!(resp.status().is_client_error());
    // A bearer token changes nothing: the signature is the only credential.
    let body = stripe_event("evt_jwt");
    let mut headers = stripe_headers(STRIPE_SECRET, now(), &body);
    headers.push(("authorization", "Bearer nonsense".into()));
    let (status, _) = post(configured(&db), "/api/webhooks/stripe", &headers, body).await;
    assert_eq!(status, 200);
}

// ---- docs/INBOX.md: consuming the inbox ----

async fn seed_inbox(db: &TestDb, n: usize) {
    for i in 0..n {
        let body = stripe_event(&format!("evt_{i:04}"));
        let (status, _) = post(
            configured(db),
            "/api/webhooks/stripe",
            &stripe_headers(STRIPE_SECRET, now(), &body),
            body,
        )
        .await;
        assert_eq!(status, 200);
    }
}

/// The consumer loop of docs/INBOX.md: claim a batch with SKIP LOCKED, do the
/// work in the same transaction, mark processed, commit.
async fn consume(mut c: tokio_postgres::Client, who: &'static str) -> Vec<String> {
    let mut mine = Vec::new();
    loop {
        let tx = c.transaction().await.unwrap();
        let rows = tx
            .query(
                "SELECT id, external_id FROM postbox.inbox
                 WHERE processed_at IS NULL
                 ORDER BY received_at
                 LIMIT 5
                 FOR UPDATE SKIP LOCKED",
                &[],
            )
            .await
            .unwrap();
        if rows.is_empty() {
            tx.commit().await.unwrap();
            return mine;
        }
        for r in &rows {
            let id: uuid::Uuid = r.get(0);
            let ext: String = r.get(1);
            // The application's own work, in the same transaction.
            tx.execute(
                "INSERT INTO processed_log (external_id, consumer) VALUES ($1, $2)",
                &[&ext, &who],
            )
            .await
            .unwrap();
            tx.execute(
                "UPDATE postbox.inbox SET processed_at = now() WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
            mine.push(ext);
        }
        // Widen the window in which the other consumer runs concurrently.
        tokio::time::sleep(Duration::from_millis(5)).await;
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn two_concurrent_consumers_process_every_inbox_row_exactly_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE processed_log (external_id text NOT NULL, consumer text NOT NULL)",
    )
    .await
    .unwrap();
    const N: usize = 60;
    seed_inbox(&db, N).await;
    let (a, b) = tokio::join!(
        consume(db.client().await, "a"),
        consume(db.client().await, "b")
    );
    assert_eq!(a.len() + b.len(), N, "a={} b={}", a.len(), b.len());
    assert_eq!(
        count(&c, "SELECT count(DISTINCT external_id) FROM processed_log").await,
        N as i64
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM processed_log").await,
        N as i64
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.inbox WHERE processed_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_rolled_back_consumer_leaves_the_row_for_the_next_one() {
    let db = TestDb::new().await;
    seed_inbox(&db, 1).await;
    let mut c = db.client().await;
    let tx = c.transaction().await.unwrap();
    let row = tx
        .query_one(
            "SELECT id FROM postbox.inbox WHERE processed_at IS NULL
             ORDER BY received_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await
        .unwrap();
    let id: uuid::Uuid = row.get(0);
    // While it is locked, another consumer sees nothing to do (it skips, it does not wait).
    let other = db.client().await;
    let seen = other
        .query(
            "SELECT id FROM postbox.inbox WHERE processed_at IS NULL
             ORDER BY received_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await
        .unwrap();
    assert!(seen.is_empty());
    tx.execute(
        "UPDATE postbox.inbox SET processed_at = now() WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    // The work failed: roll back.
    tx.rollback().await.unwrap();
    let again = other
        .query(
            "SELECT id FROM postbox.inbox WHERE processed_at IS NULL
             ORDER BY received_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].get::<_, uuid::Uuid>(0), id);
}
