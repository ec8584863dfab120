//! Body templates (SPEC 7.3): the built-in chat templates send the JSON
//! shape each tool documents; a custom template's body is what is signed and
//! sent, byte-identical on every attempt; a template that cannot render is a
//! recorded failed attempt, never a panic or an unsigned request.

use std::sync::Arc;
use std::time::Duration;

use postbox::dispatch::Dispatcher;
use serde_json::{json, Value};

use crate::api_support::Api;
use crate::support::*;

#[tokio::test]
async fn each_chat_template_sends_its_tools_shape_signed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let slack_rx = Receiver::ok().await;
    let discord_rx = Receiver::ok().await;
    let teams_rx = Receiver::ok().await;
    let (_, slack_secret) = NewWebhook {
        template: Some(json!("slack")),
        retry_delay_seconds: 60,
        ..NewWebhook::new("team", slack_rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let (_, discord_secret) = NewWebhook {
        template: Some(json!("discord")),
        retry_delay_seconds: 60,
        ..NewWebhook::new("team", discord_rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let (_, teams_secret) = NewWebhook {
        template: Some(json!("teams")),
        retry_delay_seconds: 60,
        ..NewWebhook::new("team", teams_rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let event = publish(
        &c,
        "payment.succeeded",
        json!({"amount": 1200, "currency": "EUR"}),
        "team",
    )
    .await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();

    // Slack incoming webhook: {"text": "..."} (mrkdwn).
    let slack = &slack_rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(slack.verifies(&slack_secret));
    assert_eq!(slack.header("webhook-id"), event.to_string());
    assert_eq!(slack.header("content-type"), "application/json");
    let body = slack.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text"]);
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("*payment.succeeded*"), "{text}");
    assert!(text.contains("\"amount\": 1200"), "{text}");

    // Discord webhook: {"content": "..."} of at most 2000 characters, no pings.
    let discord = &discord_rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(discord.verifies(&discord_secret));
    let body = discord.json();
    let content = body["content"].as_str().unwrap();
    assert!(content.starts_with("**payment.succeeded**"), "{content}");
    assert!(content.chars().count() <= 2000);
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));

    // Teams (Workflows): a message with one Adaptive Card attachment.
    let teams = &teams_rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(teams.verifies(&teams_secret));
    let body = teams.json();
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(card["version"].is_string());
    let blocks = card["body"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] == "TextBlock"));
    assert_eq!(blocks[0]["text"], "payment.succeeded");
}

#[tokio::test]
async fn a_custom_body_is_signed_and_identical_on_every_attempt() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Fails first, then succeeds.
    let rx = Receiver::start(Arc::new(|n| Answer::status(if n == 0 { 500 } else { 200 }))).await;
    let (hook, secret) = NewWebhook {
        template: Some(json!({"body": "{\"event\": {{ type | tojson }}, \"who\": {{ data.user.name | tojson }}, \"at\": \"{{ timestamp }}\", \"id\": \"{{ id }}\"}"})),
        retry_delay_seconds: 0,
        ..NewWebhook::new("team", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    let event = publish(
        &c,
        "user.created",
        json!({"user": {"name": "Ada \"Countess\" Lovelace"}}),
        "team",
    )
    .await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    rx.wait_for(1, Duration::from_secs(10)).await;
    // retry_delay_seconds = 0: the retry is due at once.
    d.run_once().await.unwrap();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, got[1].body, "byte-identical on every attempt");
    assert!(got[0].verifies(&secret) && got[1].verifies(&secret));
    assert_eq!(got[1].header("x-webhook-attempt"), "2");
    let body = got[1].json();
    assert_eq!(body["event"], "user.created");
    assert_eq!(body["who"], "Ada \"Countess\" Lovelace");
    assert_eq!(body["id"], event.to_string());
    let status: String = c
        .query_one(
            "SELECT status::text FROM postbox.deliveries WHERE webhook_id = $1",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "success");
}

#[tokio::test]
async fn a_template_that_cannot_render_is_a_recorded_failure_and_nothing_is_sent() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::ok().await;
    let (hook, _) = NewWebhook {
        max_retries: 0,
        ..NewWebhook::new("team", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    // Written by SQL around the API's syntax check: a division by zero at
    // render time, and (second webhook) a syntax error.
    c.execute(
        "UPDATE postbox.webhooks SET template = '{\"body\": \"{{ 1 // data.n }}\"}' WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    let (broken, _) = NewWebhook {
        max_retries: 0,
        ..NewWebhook::new("team", rx.url(), &["*"])
    }
    .insert(&c)
    .await;
    c.execute(
        "UPDATE postbox.webhooks SET template = '{\"body\": \"{{ data.n \"}' WHERE id = $1",
        &[&broken],
    )
    .await
    .unwrap();
    publish(&c, "user.created", json!({"n": 0}), "team").await;
    let d = Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();
    for (webhook, words) in [(hook, "failed to render"), (broken, "syntax error")] {
        let row = c
            .query_one(
                "SELECT d.status::text, d.error_message, a.error_message, a.response_code
                 FROM postbox.deliveries d
                 JOIN postbox.delivery_attempts a ON a.delivery_id = d.id
                 WHERE d.webhook_id = $1",
                &[&webhook],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "failed");
        let error: String = row.get(1);
        assert!(
            error.contains("template") && error.contains(words),
            "{error}"
        );
        assert_eq!(row.get::<_, Option<String>>(2), Some(error));
        assert_eq!(row.get::<_, Option<i32>>(3), None);
    }
    assert_eq!(rx.count(), 0, "no request, signed or not");
}

#[tokio::test]
async fn the_api_checks_templates_and_previews_them() {
    let api = Api::start().await;
    let t = api.token("team");
    let made = api
        .create(
            "team",
            json!({"name": "chat", "url": "http://127.0.0.1:9/", "events": ["*"], "template": "slack"}),
        )
        .await;
    assert_eq!(made["template"], "slack");
    let id = made["id"].as_str().unwrap().to_string();
    for (template, words) in [
        (json!("email"), "discord"),
        (json!({"body": "{{ data.x "}), "syntax error"),
        (json!({"body": 1}), "discord"),
        (json!({"body": "x", "more": 1}), "discord"),
    ] {
        let (s, j) = api
            .call(
                "PUT",
                &format!("/api/webhooks/{id}"),
                Some(&t),
                Some(json!({ "template": template })),
            )
            .await;
        assert_eq!(s, 400, "{template}: {j}");
        let text = j["error"].to_string();
        assert!(text.contains("template") && text.contains(words), "{j}");
    }
    // A template and a batch may be set together (a batch carries the
    // standard bodies: tests/it/batches.rs).
    let (s, j) = api
        .call(
            "PUT",
            &format!("/api/webhooks/{id}"),
            Some(&t),
            Some(json!({"batch": {"maxEvents": 10}})),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["template"], "slack");
    assert_eq!(j["data"]["batch"]["maxEvents"], 10);

    let preview = |template: Value, event: Value| {
        let api = &api;
        let t = t.clone();
        async move {
            api.call(
                "POST",
                "/api/webhooks/template-preview",
                Some(&t),
                Some(json!({"template": template, "event": event})),
            )
            .await
        }
    };
    let event = json!({"id": "f47ac10b-58cc-4372-a567-0e02b2c3d479", "type": "project.updated",
                       "timestamp": "2026-11-28T19:47:22.123Z", "data": {"name": "Atlas"}});
    let (s, j) = preview(
        json!({"body": "{{ type }} {{ data.name }} {{ id }} {{ timestamp }}"}),
        event.clone(),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        j["data"]["body"],
        "project.updated Atlas f47ac10b-58cc-4372-a567-0e02b2c3d479 2026-11-28T19:47:22.123Z"
    );
    let (s, j) = preview(json!("discord"), event.clone()).await;
    assert_eq!(s, 200, "{j}");
    let body: Value = serde_json::from_str(j["data"]["body"].as_str().unwrap()).unwrap();
    assert!(body["content"]
        .as_str()
        .unwrap()
        .starts_with("**project.updated**"));
    // null: the standard body.
    let (s, j) = preview(Value::Null, event.clone()).await;
    assert_eq!(s, 200, "{j}");
    let body: Value = serde_json::from_str(j["data"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"], json!({"name": "Atlas"}));
    assert_eq!(body["timestamp"], "2026-11-28T19:47:22.123Z");
    // Render failures and bad events are 400s naming the field.
    let (s, j) = preview(json!({"body": "{{ 1 // 0 }}"}), event.clone()).await;
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].to_string().contains("failed to render"), "{j}");
    let (s, j) = preview(json!("slack"), json!({"type": "x.y"})).await;
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].to_string().contains("event.data"), "{j}");
    let (s, j) = preview(
        json!("slack"),
        json!({"type": "x.y", "data": {}, "id": "nope"}),
    )
    .await;
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].to_string().contains("event.id"), "{j}");
}

#[tokio::test]
async fn the_test_send_renders_the_template() {
    let api = Api::start().await;
    let rx = Receiver::ok().await;
    let made = api
        .create(
            "team",
            json!({"name": "chat", "url": rx.url(), "events": ["*"], "template": "slack"}),
        )
        .await;
    let id = made["id"].as_str().unwrap();
    let secret = made["secret"].as_str().unwrap().to_string();
    let (s, j) = api
        .call(
            "POST",
            &format!("/api/webhooks/{id}/test"),
            Some(&api.token("team")),
            None,
        )
        .await;
    assert_eq!(s, 200, "{j}");
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert!(got[0].verifies(&secret));
    let text = got[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("*webhook.test*"), "{text}");
}
