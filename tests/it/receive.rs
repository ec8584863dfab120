//! `postbox receive`: answers 200 to verified deliveries, 401 to bad
//! signatures, 500 under `--fail-rate`, prints each delivery, and takes a
//! real delivery. It runs as the binary runs it: `postbox receive --port 0`,
//! whose first line of output says where it listens.

use std::process::Stdio;
use std::time::Duration;

use postbox::signing::SigningKey;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::support::*;

const SECRET: &str = "whsec_cG9zdGJveC1kZW1vLWtleS1ub3QtYS1zZWNyZXQhISE=";

/// A running `postbox receive`, killed on drop.
struct Running {
    url: String,
    /// Its stdout, line by line.
    lines: mpsc::UnboundedReceiver<String>,
    _child: tokio::process::Child,
}

impl Running {
    /// Waits for a printed line containing `text`.
    async fn printed(&mut self, text: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return line;
                }
            }
            panic!("postbox receive closed its output before printing {text:?}")
        });
        found
            .await
            .unwrap_or_else(|_| panic!("postbox receive never printed {text:?}"))
    }
}

fn receive(secret: Option<&str>, fail_rate: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_postbox"));
    cmd.args(["receive", "--port", "0", "--fail-rate", fail_rate])
        .env_remove("POSTBOX_RECEIVE_SECRET")
        .env_remove("POSTBOX_RECEIVE_HOST")
        .kill_on_drop(true);
    if let Some(s) = secret {
        cmd.args(["--secret", s]);
    }
    cmd
}

async fn start(secret: Option<&str>, fail_rate: &str) -> Running {
    let mut child = receive(secret, fail_rate)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, lines) = mpsc::unbounded_channel();
    // Drain stdout for the receiver's whole life, so its pipe never fills.
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        url: String::new(),
        lines,
        _child: child,
    };
    let first = running.printed("listening on http://").await;
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    running.url = format!("http://{addr}/hook");
    running
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
    let mut rx = start(Some(SECRET), "0.0").await;
    assert_eq!(post(&rx.url, BODY, BODY).await, (200, json!({"ok": true})));
    rx.printed("event      project.updated").await;
    rx.printed("signature  verified").await;
    let tampered = BODY.replace("42", "43");
    let (status, body) = post(&rx.url, &tampered, BODY).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "no matching signature");
    rx.printed("signature  INVALID: no matching signature")
        .await;
}

#[tokio::test]
async fn receive_without_a_secret_checks_nothing() {
    let rx = start(None, "0.0").await;
    assert_eq!(post(&rx.url, "{}", "other").await.0, 200);
}

#[tokio::test]
async fn receive_with_fail_rate_one_answers_500() {
    let rx = start(Some(SECRET), "1.0").await;
    assert_eq!(post(&rx.url, BODY, BODY).await.0, 500);
    // A bad signature is still a 401: verification comes first.
    assert_eq!(post(&rx.url, "{}", BODY).await.0, 401);
}

#[tokio::test]
async fn receive_refuses_a_fail_rate_outside_zero_to_one() {
    let out = receive(None, "1.5").output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--fail-rate"), "{err}");
}

#[tokio::test]
async fn receive_accepts_a_real_delivery() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (_, secret) = NewWebhook::new("user_7", "http://127.0.0.1:9/".into(), &["*"])
        .insert(&c)
        .await;
    let rx = start(Some(&secret), "0").await;
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
