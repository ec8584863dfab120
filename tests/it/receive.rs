//! `postbox receive`: answers 200 to verified deliveries, 401 to bad
//! signatures, 500 under `--fail-rate`, and takes a real delivery.

use std::time::Duration;

use postbox::config::ReceiveArgs;
use postbox::signing::SigningKey;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::*;

const SECRET: &str = "whsec_cG9zdGJveC1kZW1vLWtleS1ub3QtYS1zZWNyZXQhISE=";

struct Running {
    url: String,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(secret: Option<&str>, fail_rate: f64) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let args = ReceiveArgs {
        port: 0,
        host: "127.0.0.1".parse().unwrap(),
        secret: secret.map(str::to_string),
        fail_rate,
    };
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { postbox::receive::run_on(listener, args, s).await.unwrap() });
    Running { url, stop }
}

async fn post(url: &str, body: &str, signed_body: &str) -> (u16, serde_json::Value) {
    let key = SigningKey::from_secret(SECRET).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            key.sign("msg_1", ts, signed_body.as_bytes()),
        )
        .header("x-webhook-event", "project.updated")
        .header("x-webhook-attempt", "1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

const BODY: &str = r#"{"id":"e1","type":"project.updated","timestamp":"2026-11-28T19:47:22.123Z","data":{"id":42}}"#;

#[tokio::test]
async fn receive_answers_200_when_the_signature_verifies_and_401_when_not() {
    let rx = start(Some(SECRET), 0.0).await;
    assert_eq!(post(&rx.url, BODY, BODY).await, (200, json!({"ok": true})));
    let tampered = BODY.replace("42", "43");
    let (status, body) = post(&rx.url, &tampered, BODY).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "no matching signature");
}

#[tokio::test]
async fn receive_without_a_secret_checks_nothing() {
    let rx = start(None, 0.0).await;
    assert_eq!(post(&rx.url, "{}", "other").await.0, 200);
}

#[tokio::test]
async fn receive_with_fail_rate_one_answers_500() {
    let rx = start(Some(SECRET), 1.0).await;
    assert_eq!(post(&rx.url, BODY, BODY).await.0, 500);
    // A bad signature is still a 401: verification comes first.
    assert_eq!(post(&rx.url, "{}", BODY).await.0, 401);
}

#[tokio::test]
async fn receive_refuses_a_fail_rate_outside_zero_to_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let args = ReceiveArgs {
        port: 0,
        host: "127.0.0.1".parse().unwrap(),
        secret: None,
        fail_rate: 1.5,
    };
    let err = postbox::receive::run_on(listener, args, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--fail-rate"), "{err}");
}

#[tokio::test]
async fn receive_accepts_a_real_delivery() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (_, secret) = NewWebhook::new("user_7", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    let rx = start(Some(&secret), 0.0).await;
    c.execute("UPDATE postbox.webhooks SET url = $1", &[&rx.url])
        .await
        .unwrap();
    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    publish(&c, "project.updated", json!({"id": 42}), "user_7").await;
    wait_until("the delivery succeeds", Duration::from_secs(15), || async {
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'",
        )
        .await
            == 1
    })
    .await;
    running.shutdown().await;
}
