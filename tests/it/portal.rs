//! The web portal over real HTTP: links, sessions, CSRF, headers, owner
//! scoping, escaping, the delivery log, verify, the live tail and the
//! operator view.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::api_support::Api;
use crate::portal_support::{client, csrf_of, mint, PortalSession};
use crate::support::{dispatch_config, publish, spawn_dispatcher, system_clock, Receiver};

/// `GET /api/webhooks/{id}` as `owner`: status and body.
async fn webhook_of(api: &Api, owner: &str, id: &str) -> (u16, serde_json::Value) {
    api.call(
        "GET",
        &format!("/api/webhooks/{id}"),
        Some(&api.token(owner)),
        None,
    )
    .await
}

/// Whether the stream `body` ends within `limit`.
async fn ends_within<S>(body: &mut S, limit: Duration) -> Result<(), tokio::time::error::Elapsed>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await
}

/// A receiver that answers every request with `status` and `body`.
async fn answering(status: u16, body: &'static str) -> Receiver {
    Receiver::start(std::sync::Arc::new(move |_| {
        crate::support::receiver::Answer {
            body: body.into(),
            ..crate::support::receiver::Answer::status(status)
        }
    }))
    .await
}

#[tokio::test]
async fn a_link_opens_one_session_with_a_locked_down_cookie() {
    let api = Api::start().await;
    let url = mint(&api, "acme", false).await;
    assert!(
        url.starts_with(&format!("{}/portal/login?token=", api.base)),
        "{url}"
    );
    let http = client();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/portal/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/portal", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "http base URL: no Secure flag");
    // Only a hash of the token is stored.
    let token = url.split("token=").nth(1).unwrap();
    let db = api.db.client().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM postbox.portal_links WHERE token_hash = sha256($1::text::bytea)",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let plain: i64 = db
        .query_one(
            "SELECT count(*) FROM postbox.portal_links WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);
    // Single use.
    let again = http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(again.headers().get("set-cookie").is_none());
    let page = again.text().await.unwrap();
    assert!(page.contains("already used"), "{page}");
    // The session works.
    let value = cookie.split(';').next().unwrap();
    let home = http
        .get(format!("{}/portal/", api.base))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("No endpoints yet"), "an empty state: {html}");
}

#[tokio::test]
async fn an_https_base_url_makes_the_cookie_secure() {
    let db = crate::support::TestDb::new().await;
    let mut state = crate::support::api_state(db.store(), crate::api_support::SECRET, true);
    state.portal.base_url = "https://hooks.example".into();
    let api = Api::serve(db, state).await;
    let url = mint(&api, "acme", false).await;
    assert!(
        url.starts_with("https://hooks.example/portal/login?token="),
        "{url}"
    );
    let local = url.replace("https://hooks.example", &api.base);
    let r = client().get(&local).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn minting_links_is_for_admins_and_checks_its_input() {
    let api = Api::start().await;
    let (status, _) = api
        .call(
            "POST",
            "/api/portal/sessions",
            Some(&api.token("acme")),
            Some(json!({"ownerId": "acme"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(
            "POST",
            "/api/portal/sessions",
            None,
            Some(json!({"ownerId": "acme"})),
        )
        .await;
    assert_eq!(status, 401);
    for (body, field) in [
        (json!({}), "ownerId"),
        (json!({"ownerId": ""}), "ownerId"),
        (json!({"ownerId": 7}), "ownerId"),
        (json!({"ownerId": "a", "ttlSeconds": 5}), "ttlSeconds"),
        (json!({"ownerId": "a", "ttlSeconds": 86401}), "ttlSeconds"),
        (json!({"ownerId": "a", "ttlSeconds": "60"}), "ttlSeconds"),
        (json!({"ownerId": "a", "admin": "yes"}), "admin"),
        (json!({"ownerId": "a", "extra": 1}), "extra"),
    ] {
        let (status, err) = api
            .call(
                "POST",
                "/api/portal/sessions",
                Some(&api.admin()),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    let (status, ok) = api
        .call(
            "POST",
            "/api/portal/sessions",
            Some(&api.admin()),
            Some(json!({"ownerId": "a", "ttlSeconds": 60, "admin": true})),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert!(ok["data"]["expiresAt"].is_string());
}

#[tokio::test]
async fn expired_links_and_sessions_open_nothing() {
    let api = Api::start().await;
    let store = api.db.store();
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let request =
        postbox::portal::LinkRequest::new("acme", false, Duration::from_secs(60)).unwrap();
    let link = postbox::portal::mint_link(&store, &request, past, &api.base)
        .await
        .unwrap();
    let r = client().get(&link.url).send().await.unwrap();
    assert_eq!(r.status(), 401, "a link past its lifetime");
    // A session past its end.
    let s = PortalSession::open(&api, "acme", false).await;
    api.db
        .client()
        .await
        .execute(
            "UPDATE postbox.portal_sessions SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let (status, html) = s.get("/portal/").await;
    assert_eq!(status, 401);
    assert!(html.contains("session has ended"), "{html}");
    // Without any cookie.
    let r = client()
        .get(format!("{}/portal/", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn forms_without_the_session_s_csrf_token_change_nothing() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let fields = [
        ("name", "hook"),
        ("url", "http://127.0.0.1:9/h"),
        ("events", "*"),
    ];
    let (status, _, html) = s.post_raw("/portal/endpoints", &fields).await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("CSRF"));
    let mut wrong = vec![("csrf", "not-the-token")];
    wrong.extend_from_slice(&fields);
    let (status, _, _) = s.post_raw("/portal/endpoints", &wrong).await;
    assert_eq!(status, 403);
    // Another session's token does not do either.
    let other = PortalSession::open(&api, "acme", false).await;
    let mut others = vec![("csrf", other.csrf.as_str())];
    others.extend_from_slice(&fields);
    let (status, _, _) = s.post_raw("/portal/endpoints", &others).await;
    assert_eq!(status, 403);
    let (_, list) = api
        .call("GET", "/api/webhooks", Some(&api.token("acme")), None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    // With it, the endpoint is created and its secret shown once.
    let (status, _, html) = s.post("/portal/endpoints", &fields).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("whsec_"));
}

#[tokio::test]
async fn every_answer_carries_a_strict_policy_and_no_inline_script() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", true).await;
    for path in [
        "/portal/",
        "/portal/endpoints/new",
        "/portal/tail",
        "/portal/admin",
        "/portal/nope",
    ] {
        let r = s.get_raw(path).await;
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {part} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        let html = r.text().await.unwrap();
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src="),
                "{path}: inline script {tag}"
            );
        }
        assert!(!html.contains(" style="), "{path}: inline style");
    }
    let js = client()
        .get(format!("{}/portal/assets/portal.js", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}

#[tokio::test]
async fn allowed_frame_ancestors_are_in_the_policy() {
    let db = crate::support::TestDb::new().await;
    let mut state = crate::support::api_state(db.store(), crate::api_support::SECRET, true);
    state.portal = postbox::config::PortalConfig::new(
        None,
        "https://app.example.com 'self'",
        Duration::from_secs(3600),
    )
    .unwrap();
    let api = Api::serve(db, state).await;
    let r = client()
        .get(format!("{}/portal/", api.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.ends_with("frame-ancestors https://app.example.com 'self'"),
        "{csp}"
    );
    assert!(r.headers().get("x-frame-options").is_none());
}

#[tokio::test]
async fn another_owner_s_ids_are_not_found() {
    let api = Api::start().await;
    let theirs = api
        .create(
            "other",
            json!({"name": "theirs", "url": "http://127.0.0.1:9/h", "events": ["*"]}),
        )
        .await;
    let id = theirs["id"].as_str().unwrap();
    let s = PortalSession::open(&api, "acme", false).await;
    for path in [
        format!("/portal/endpoints/{id}"),
        format!("/portal/endpoints/{id}/edit"),
        format!("/portal/endpoints/{id}/deliveries"),
        format!("/portal/endpoints/{id}/verify"),
        format!("/portal/endpoints/{id}/deliveries/{id}"),
        "/portal/endpoints/not-a-uuid".to_string(),
    ] {
        let (status, html) = s.get(&path).await;
        assert_eq!(status, 404, "{path}: {html}");
        assert!(!html.contains("theirs"), "{path}");
    }
    for action in ["delete", "rotate", "verify", "edit"] {
        let (status, _, _) = s
            .post(
                &format!("/portal/endpoints/{id}/{action}"),
                &[("name", "x")],
            )
            .await;
        assert_eq!(status, 404, "{action}");
    }
    let (status, still) = webhook_of(&api, "other", id).await;
    assert_eq!(status, 200);
    assert_eq!(still["data"]["name"], "theirs");
    // The operator view is for admin links only.
    let (status, _) = s.get("/portal/admin").await;
    assert_eq!(status, 403);
    let (status, _, _) = s.post("/portal/admin/pause", &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn script_tags_in_names_payloads_and_bodies_are_shown_as_text() {
    let api = Api::start().await;
    let receiver = answering(500, "<script>alert('body')</script>").await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s
        .create(
            &api,
            "<script>alert('name')</script>",
            &receiver.url(),
            &["project.*"],
        )
        .await;
    let db = api.db.client().await;
    publish(
        &db,
        "project.created",
        json!({"name": "<script>alert('payload')</script>"}),
        "acme",
    )
    .await;
    let dispatcher = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    receiver.wait_for(1, Duration::from_secs(20)).await;
    dispatcher.shutdown().await;
    let did: uuid::Uuid = db
        .query_one("SELECT id FROM postbox.deliveries", &[])
        .await
        .unwrap()
        .get(0);
    for path in [
        "/portal/".to_string(),
        format!("/portal/endpoints/{id}"),
        format!("/portal/endpoints/{id}/deliveries"),
        format!("/portal/endpoints/{id}/deliveries/{did}"),
    ] {
        let (status, html) = s.get(&path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains("<script>alert"), "{path}: unescaped");
    }
    let (_, page) = s
        .get(&format!("/portal/endpoints/{id}/deliveries/{did}"))
        .await;
    assert!(
        page.contains("&lt;script&gt;alert("),
        "payload as text: {page}"
    );
    assert!(page.contains("Response body"), "the attempt's body: {page}");
    assert!(page.contains("500"));
}

#[tokio::test]
async fn the_log_filters_by_status_type_and_time_and_pages_by_key() {
    let api = Api::start().await;
    let receiver = Receiver::ok().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s.create(&api, "hook", &receiver.url(), &["*"]).await;
    let db = api.db.client().await;
    for i in 0..60 {
        let ty = if i % 3 == 0 {
            "user.created"
        } else {
            "project.created"
        };
        publish(&db, ty, json!({"i": i}), "acme").await;
    }
    let dispatcher = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    receiver.wait_for(60, Duration::from_secs(30)).await;
    dispatcher.shutdown().await;
    let (status, html) = s
        .get(&format!(
            "/portal/endpoints/{id}/deliveries?type=user.created&status=success&within=1h"
        ))
        .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        html.matches("<code>user.created</code>").count(),
        20,
        "{html}"
    );
    assert!(!html.contains("<code>project.created</code>"));
    // Unfiltered: a page of 50 and a cursor to the last 10.
    let (_, first) = s.get(&format!("/portal/endpoints/{id}/deliveries")).await;
    assert_eq!(
        first.matches("data-label=\"Created\"").count(),
        50,
        "{first}"
    );
    let at = first.find("before=").expect("an Older link") + 7;
    let cursor: String = first[at..].chars().take_while(|c| *c != '"').collect();
    let cursor = cursor.replace("&amp;", "&");
    let (_, older) = s
        .get(&format!(
            "/portal/endpoints/{id}/deliveries?before={cursor}"
        ))
        .await;
    assert_eq!(
        older.matches("data-label=\"Created\"").count(),
        10,
        "{older}"
    );
    assert!(!older.contains("before="), "the end of the log");
    // Bad filters are a 400 that names them.
    for (q, field) in [
        ("status=nope", "status"),
        ("within=2y", "within"),
        ("before=x", "before"),
        ("type=%00", "type: not an event type"),
    ] {
        let (status, html) = s
            .get(&format!("/portal/endpoints/{id}/deliveries?{q}"))
            .await;
        assert_eq!(status, 400, "{q}");
        assert!(html.contains(field), "{q}: {html}");
        assert!(!html.contains("UTF8"), "{q}: a database message: {html}");
    }
}

#[tokio::test]
async fn verify_sends_a_test_and_shows_the_answer() {
    let api = Api::start().await;
    let receiver = answering(200, "pong from receiver").await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s.create(&api, "hook", &receiver.url(), &["*"]).await;
    let (status, _, html) = s.post(&format!("/portal/endpoints/{id}/verify"), &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Delivered"), "{html}");
    assert!(html.contains("pong from receiver"));
    assert!(html.contains(" ms</dd>"));
    assert_eq!(receiver.count(), 1);
    assert_eq!(receiver.all()[0].header("x-webhook-event"), "webhook.test");
}

#[tokio::test]
async fn retry_rotate_edit_and_delete_go_through_the_api() {
    let api = Api::start().await;
    let receiver = Receiver::ok().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s.create(&api, "hook", &receiver.url(), &["*"]).await;
    let (_, _, verify) = s.post(&format!("/portal/endpoints/{id}/verify"), &[]).await;
    let at = verify.find("/deliveries/").unwrap() + 12;
    let did = &verify[at..at + 36];
    let (status, location, _) = s
        .post(
            &format!("/portal/endpoints/{id}/deliveries/{did}/retry"),
            &[],
        )
        .await;
    assert_eq!(status, 303);
    assert!(location.ends_with("?retried=1"));
    let (_, page) = s.get(&location).await;
    assert!(page.contains("Queued again"));
    let (status, _, rotated) = s
        .post(
            &format!("/portal/endpoints/{id}/rotate"),
            &[("grace_seconds", "3600")],
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert!(rotated.contains("whsec_") && rotated.contains("keeps signing too until"));
    // Pause and resume go through the API: the webhook reads paused, then not.
    let (_, page) = s.get(&format!("/portal/endpoints/{id}")).await;
    assert!(
        page.contains("Pause deliveries") && page.contains("flowing"),
        "{page}"
    );
    for (action, paused, button) in [
        ("pause", true, "Resume deliveries"),
        ("resume", false, "Pause deliveries"),
    ] {
        let (status, location, _) = s
            .post(&format!("/portal/endpoints/{id}/{action}"), &[])
            .await;
        assert_eq!(status, 303, "{action}");
        let (_, page) = s.get(&location).await;
        assert!(page.contains(button), "{action}: {page}");
        let (_, body) = api
            .call(
                "GET",
                &format!("/api/webhooks/{id}"),
                Some(&api.token("acme")),
                None,
            )
            .await;
        assert_eq!(body["data"]["paused"], paused, "{action}: {body}");
    }
    let (_, page) = s.get(&format!("/portal/endpoints/{id}")).await;
    assert!(page.contains("flowing"), "{page}");
    // Recover: a bad range is a 4xx page, never a 500; a good one goes
    // through the API's recover and says how many were queued again.
    let (status, _, page) = s
        .post(
            &format!("/portal/endpoints/{id}/recover"),
            &[("hours", "0")],
        )
        .await;
    assert!((400..500).contains(&status), "{status}: {page}");
    let (status, location, _) = s
        .post(
            &format!("/portal/endpoints/{id}/recover"),
            &[("hours", "24")],
        )
        .await;
    assert_eq!(status, 303);
    assert!(location.contains("?recovered=0"), "{location}");
    let (_, page) = s.get(&location).await;
    assert!(
        page.contains("failed deliveries were queued again"),
        "{page}"
    );
    // An invalid edit shows the form again with the API's message.
    let (status, _, form) = s
        .post(
            &format!("/portal/endpoints/{id}/edit"),
            &[
                ("name", "hook"),
                ("url", "ftp://x"),
                ("events", "*"),
                ("max_retries", "3"),
                ("retry_delay", "60"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{form}");
    assert!(
        form.contains("url:") && form.contains("aria-invalid"),
        "{form}"
    );
    let (status, _, form) = s
        .post(
            &format!("/portal/endpoints/{id}/edit"),
            &[
                ("name", "hook"),
                ("url", &receiver.url()),
                ("events", "*"),
                ("max_retries", "11"),
                ("retry_delay", "60"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(form.contains("maxRetries"), "{form}");
    let (status, location, _) = s
        .post(
            &format!("/portal/endpoints/{id}/edit"),
            &[
                ("name", "renamed"),
                ("url", &receiver.url()),
                ("events", "user.*"),
                ("max_retries", "2"),
                ("retry_delay", "30"),
                ("headers", "X-Team: core"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/portal/endpoints/{id}"));
    let (_, w) = webhook_of(&api, "acme", &id).await;
    assert_eq!(w["data"]["name"], "renamed");
    assert_eq!(w["data"]["events"], json!(["user.*"]));
    assert_eq!(w["data"]["headers"], json!({"x-team": "core"}));
    let (status, location, _) = s.post(&format!("/portal/endpoints/{id}/delete"), &[]).await;
    assert_eq!((status, location.as_str()), (303, "/portal/?deleted=1"));
    let (status, _) = webhook_of(&api, "acme", &id).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_live_tail_streams_new_deliveries_and_their_outcomes() {
    let api = Api::start().await;
    let receiver = Receiver::ok().await;
    let s = PortalSession::open(&api, "acme", false).await;
    s.create(&api, "hook", &receiver.url(), &["*"]).await;
    let r = s.get_raw("/portal/tail/stream").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    // The tail's listener turns the trigger's NOTIFY on.
    let db = api.db.client().await;
    crate::support::wait_until("the tail watches", Duration::from_secs(10), || {
        let db = &db;
        async move {
            db.query_one(
                "SELECT coalesce(watched_until > now(), false) FROM postbox.portal_tail",
                &[],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        }
    })
    .await;
    publish(&db, "user.created", json!({"who": "tail"}), "acme").await;
    publish(&db, "user.created", json!({"who": "other"}), "someone-else").await;
    let dispatcher = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    let mut text = String::new();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("\"status\":\"success\"") {
                return true;
            }
        }
        false
    })
    .await;
    dispatcher.shutdown().await;
    assert_eq!(seen, Ok(true), "{text}");
    assert!(text.contains("event:delivery"), "{text}");
    assert!(text.contains("user.created"));
    // The new row and its outcome come as one event or two (wake-ups
    // within 250 ms fold into one read).
    // Only the owner's deliveries.
    let theirs: uuid::Uuid = db
        .query_one(
            "SELECT d.id FROM postbox.deliveries d JOIN postbox.webhooks w ON w.id = d.webhook_id WHERE w.owner_id = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(text.contains(&theirs.to_string()));
}

#[tokio::test]
async fn the_operator_view_shows_the_queue_and_controls_it() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "ops", true).await;
    let (status, html) = s.get("/portal/admin").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Queue") && html.contains("project.created"));
    let (status, location, _) = s.post("/portal/admin/pause", &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/portal/admin?done=paused")
    );
    let (_, stats) = api
        .call("GET", "/api/webhooks/queue/stats", Some(&api.admin()), None)
        .await;
    assert_eq!(stats["data"]["isPaused"], true);
    let (_, html) = s.get(&location).await;
    assert!(html.contains("Resume the queue"));
    assert!(csrf_of(&html) == s.csrf);
    let (status, _, _) = s.post("/portal/admin/resume", &[]).await;
    assert_eq!(status, 303);
    let (status, location, _) = s.post("/portal/admin/retry-failed", &[]).await;
    assert_eq!(status, 303);
    assert!(location.contains("count=0"), "{location}");
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let (status, _, html) = s.post("/portal/logout", &[]).await;
    assert_eq!(status, 200, "{html}");
    let (status, _) = s.get("/portal/").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_cli_prints_a_link_that_opens_the_portal() {
    let api = Api::start().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args([
            "portal-link",
            "--sub",
            "cli-owner",
            "--ttl",
            "5m",
            "--base-url",
        ])
        .arg(&api.base)
        .env("DATABASE_URL", &api.db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        url.starts_with(&format!("{}/portal/login?token=", api.base)),
        "{url}"
    );
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args(["portal-link", "--sub", "x", "--ttl", "2d"])
        .env("DATABASE_URL", &api.db.url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lifetime"));
}

#[tokio::test]
async fn the_live_tail_ends_with_its_session() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    api.db
        .client()
        .await
        .execute(
            "UPDATE postbox.portal_sessions SET expires_at = now() + interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let r = s.get_raw("/portal/tail/stream").await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let ended = ends_within(&mut body, Duration::from_secs(20)).await;
    assert!(ended.is_ok(), "the stream ends when the session does");
    let (status, _) = s.get("/portal/tail/stream").await;
    assert_eq!(status, 401, "and reconnecting is refused");
}

#[tokio::test]
async fn a_revoked_session_ends_its_live_tail() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let r = s.get_raw("/portal/tail/stream").await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    api.db
        .client()
        .await
        .execute(
            "DELETE FROM postbox.portal_sessions WHERE owner_id = 'acme'",
            &[],
        )
        .await
        .unwrap();
    // The listener's renewal pokes every tail at least every 10 s.
    let ended = ends_within(&mut body, Duration::from_secs(30)).await;
    assert!(ended.is_ok(), "the stream ends once its session is gone");
}

#[tokio::test]
async fn verify_reads_the_certificate_of_an_https_endpoint() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // A certificate from a test CA no browser trusts, valid two days.
    let dir = std::env::temp_dir().join(format!("postbox-portal-tls-{}", uuid::Uuid::new_v4()));
    crate::tls::certificates(&dir);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s
        .create(
            &api,
            "tls",
            &format!("https://127.0.0.1:{port}/hook"),
            &["*"],
        )
        .await;
    let (status, _, html) = s.post(&format!("/portal/endpoints/{id}/verify"), &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Not delivered"), "{html}");
    assert!(html.contains("TLS certificate"), "{html}");
    assert!(html.contains("CN=db.example"), "subject: {html}");
    assert!(html.contains("CN=postbox test CA"), "issuer: {html}");
    assert!(
        html.contains("does not verify"),
        "an untrusted chain is a warning: {html}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn hostile_input_gets_a_page_that_says_what_is_wrong_never_a_500() {
    let api = Api::start().await;
    let s = PortalSession::open(&api, "acme", false).await;
    let id = s.create(&api, "hook", "http://127.0.0.1:9/h", &["*"]).await;
    // A body over 1 MiB.
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, _, html) = s.post("/portal/endpoints", &[("name", &big)]).await;
    assert_eq!(status, 413, "{}", &html[..html.len().min(300)]);
    // Bytes that are not UTF-8, and broken escapes, in a form.
    let r = s
        .http
        .post(format!("{}/portal/endpoints", api.base))
        .header("cookie", &s.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            [
                format!("csrf={}&name=%ff%fe%zz&url=", s.csrf).into_bytes(),
                vec![0xff, 0xfe],
            ]
            .concat(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A long token, a long type filter, unknown methods and paths.
    let long = "t".repeat(5000);
    let r = client()
        .get(format!("{}/portal/login?token={long}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = s
        .get(&format!(
            "/portal/endpoints/{id}/deliveries?type={}",
            "a".repeat(300)
        ))
        .await;
    assert_eq!(status, 400);
    for (method, path) in [
        ("PUT", "/portal/".to_string()),
        ("DELETE", format!("/portal/endpoints/{id}")),
        ("GET", "/portal/endpoints/%41%42".to_string()),
        ("GET", "/portal/assets/../../Cargo.toml".to_string()),
        (
            "GET",
            "/portal/endpoints/00000000-0000-0000-0000-000000000000/deliveries/x".to_string(),
        ),
    ] {
        let r = s
            .http
            .request(method.parse().unwrap(), format!("{}{path}", api.base))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            (400..500).contains(&status) && status != 401,
            "{method} {path}: {status}"
        );
    }
}
