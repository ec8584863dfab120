//! A hostile client: malformed, oversized, mistyped and misrouted requests
//! must all get a 4xx with the error envelope, never a 5xx; and every route
//! in the table is served and documented.

use serde_json::json;

use crate::api_support::*;

/// (method, path, content-type, authorization, body, expected status)
type Case<'a> = (&'a str, String, Option<&'a str>, &'a str, Vec<u8>, u16);

#[tokio::test]
async fn malformed_requests_get_a_4xx_envelope() {
    let api = Api::start().await;
    let t = api.token("u");
    let auth = format!("Bearer {t}");
    let admin = format!("Bearer {}", api.admin());
    let w = api
        .create(
            "u",
            json!({"name": "n", "url": "http://127.0.0.1:9/h", "events": ["*"]}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let hooks = "/api/webhooks".to_string();
    let one = format!("/api/webhooks/{id}");
    let j = "application/json";
    let big = vec![b' '; 1024 * 1024 + 10];
    let mut long_url = "http://example.com/".to_string();
    long_url.push_str(&"a".repeat(2100));
    let many_headers: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let create = |extra: serde_json::Value| {
        let mut b = json!({"name": "n", "url": "http://127.0.0.1:9/h", "events": ["*"]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string().into_bytes()
    };
    // (method, path, content-type, authorization, body, expected status)
    let cases: Vec<Case> = vec![
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            b"{not json".to_vec(),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            b"[1,2]".to_vec(),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            b"\"str\"".to_vec(),
            400,
        ),
        ("POST", hooks.clone(), Some(j), &auth, b"".to_vec(), 400),
        (
            "POST",
            hooks.clone(),
            Some("text/plain"),
            &auth,
            create(json!({})),
            415,
        ),
        ("POST", hooks.clone(), None, &auth, create(json!({})), 415),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"secret": "whsec_x"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"name": ""})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"name": "x".repeat(101)})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"name": 5})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"name": null})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"url": "ftp://x.org/"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"url": "javascript:alert(1)"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"url": "not a url"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"url": long_url})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"url": "http://u:p@example.com/"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"events": []})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"events": ["nope.created"]})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"events": ["nope.*"]})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"events": "*"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"maxRetries": 11})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"maxRetries": -1})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"maxRetries": "3"})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"maxRetries": 2.5})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"retryDelay": 9})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"retryDelay": 3601})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"retryDelay": 1e30})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": {"webhook-signature": "x"}})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": {"Content-Type": "x"}})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": {"x-a": "a\r\nb: c"}})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": {"bad name": "v"}})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": {"x-a": 1}})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": many_headers})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"headers": ["x"]})),
            400,
        ),
        (
            "POST",
            hooks.clone(),
            Some(j),
            &auth,
            create(json!({"active": "yes"})),
            400,
        ),
        ("POST", hooks.clone(), Some(j), &auth, big.clone(), 413),
        (
            "PUT",
            one.clone(),
            Some(j),
            &auth,
            b"{\"maxRetries\": 99}".to_vec(),
            400,
        ),
        (
            "PUT",
            one.clone(),
            Some(j),
            &auth,
            b"{\"unknown\": 1}".to_vec(),
            400,
        ),
        (
            "PUT",
            one.clone(),
            Some(j),
            &auth,
            b"{\"name\"".to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/webhooks/not-a-uuid".into(),
            Some(j),
            &auth,
            b"{}".to_vec(),
            400,
        ),
        ("GET", "/api/webhooks/123".into(), None, &auth, vec![], 400),
        ("GET", "/api/webhooks/%00".into(), None, &auth, vec![], 400),
        (
            "DELETE",
            "/api/webhooks/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz".into(),
            None,
            &auth,
            vec![],
            400,
        ),
        ("GET", format!("{hooks}?page=0"), None, &auth, vec![], 400),
        ("GET", format!("{hooks}?page=-1"), None, &auth, vec![], 400),
        ("GET", format!("{hooks}?page=abc"), None, &auth, vec![], 400),
        ("GET", format!("{hooks}?limit=0"), None, &auth, vec![], 400),
        (
            "GET",
            format!("{hooks}?limit=101"),
            None,
            &auth,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{hooks}?page=99999999999999999999"),
            None,
            &auth,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{hooks}?sort=name"),
            None,
            &auth,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{one}/deliveries?status=done"),
            None,
            &auth,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{one}/deliveries/{id}"),
            None,
            &auth,
            vec![],
            404,
        ),
        (
            "POST",
            format!("{one}/regenerate-secret"),
            Some(j),
            &auth,
            b"{\"graceSeconds\": -1}".to_vec(),
            400,
        ),
        (
            "POST",
            format!("{one}/regenerate-secret"),
            Some(j),
            &auth,
            b"{\"graceSeconds\": 604801}".to_vec(),
            400,
        ),
        (
            "POST",
            format!("{one}/regenerate-secret"),
            Some(j),
            &auth,
            b"{\"grace\": 5}".to_vec(),
            400,
        ),
        (
            "POST",
            format!("{one}/deliveries/nope/retry"),
            None,
            &auth,
            vec![],
            400,
        ),
        (
            "POST",
            format!("{one}/test"),
            Some(j),
            &auth,
            b"{\"x\": 1}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(j),
            &auth,
            b"{\"type\": \"user.created\"}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(j),
            &auth,
            b"{\"type\": \"user.created\", \"data\": [1]}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(j),
            &auth,
            b"{\"type\": 7, \"data\": {}}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(j),
            &auth,
            b"{\"type\": \"user.created\", \"data\": {}, \"idempotencyKey\": \"\"}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(j),
            &auth,
            big.clone(),
            413,
        ),
        (
            "POST",
            "/api/webhooks/queue/retry-failed".into(),
            Some(j),
            &admin,
            b"{\"webhookId\": \"x\"}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/webhooks/queue/retry-failed".into(),
            Some(j),
            &admin,
            b"{\"webhookId\": 5}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/webhooks/queue/pause".into(),
            Some(j),
            &admin,
            b"{\"now\": true}".to_vec(),
            400,
        ),
        ("PATCH", one.clone(), Some(j), &auth, b"{}".to_vec(), 405),
        ("DELETE", hooks.clone(), None, &auth, vec![], 405),
        (
            "PUT",
            "/api/webhooks/queue/stats".into(),
            None,
            &admin,
            vec![],
            405,
        ),
        (
            "GET",
            "/api/webhooks/queue/pause".into(),
            None,
            &admin,
            vec![],
            405,
        ),
        ("GET", "/api/nope".into(), None, &auth, vec![], 404),
        (
            "GET",
            "/api/webhooks/a/b/c/d/e".into(),
            None,
            &auth,
            vec![],
            404,
        ),
        ("GET", "/nope".into(), None, &auth, vec![], 404),
        ("GET", "/api/webhooks".into(), None, "Bearer", vec![], 401),
        (
            "GET",
            "/api/webhooks".into(),
            None,
            "Bearer a.b",
            vec![],
            401,
        ),
        (
            "GET",
            "/api/webhooks".into(),
            None,
            "Token abc",
            vec![],
            401,
        ),
    ];
    assert!(cases.len() >= 30);
    for (method, path, ct, authz, body, expected) in cases {
        let mut headers = vec![];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        if !authz.is_empty() {
            headers.push(("authorization", authz));
        }
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (status, json) = api.raw(method, &path, &headers, body).await;
        assert_eq!(status, expected, "{method} {path} {shown}: {json}");
        assert!(is_error_envelope(&json), "{method} {path} {shown}: {json}");
    }
    // The refusals changed nothing.
    let (_, list) = api.call("GET", "/api/webhooks", Some(&t), None).await;
    assert_eq!(list["pagination"]["total"], 1);
}

#[tokio::test]
async fn validation_errors_name_the_field_and_the_rule() {
    let api = Api::start().await;
    let t = api.token("u");
    let (s, j) = api
        .call(
            "POST",
            "/api/webhooks",
            Some(&t),
            Some(json!({"name": "n", "url": "http://127.0.0.1:9/", "events": ["*"], "maxRetries": 11})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(j["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(j["error"]["details"][0]["field"], "maxRetries");
    assert!(j["error"]["message"].as_str().unwrap().contains("0 to 10"));
    let (_, j) = api
        .call(
            "POST",
            "/api/webhooks",
            Some(&t),
            Some(json!({"url": "http://127.0.0.1:9/", "events": ["*"]})),
        )
        .await;
    assert_eq!(j["error"]["message"], "name: is required");
    let (_, j) = api
        .call(
            "POST",
            "/api/webhooks",
            Some(&t),
            Some(
                json!({"name": "n", "url": "http://127.0.0.1:9/", "events": ["*"], "color": "red"}),
            ),
        )
        .await;
    assert_eq!(j["error"]["details"][0]["field"], "color");
}

#[tokio::test]
async fn private_targets_are_refused_when_not_allowed() {
    // The SSRF guard as production runs it: private targets off.
    let api = Api::start_with(false).await;
    let t = api.token("u");
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.1.2.3/",
    ] {
        let (s, j) = api
            .call(
                "POST",
                "/api/webhooks",
                Some(&t),
                Some(json!({"name": "n", "url": url, "events": ["*"]})),
            )
            .await;
        assert_eq!(s, 400, "{url}: {j}");
        assert_eq!(j["error"]["details"][0]["field"], "url");
        assert!(
            j["error"]["message"].as_str().unwrap().contains("blocked"),
            "{j}"
        );
    }
}

#[tokio::test]
async fn every_listed_route_is_served_and_documented() {
    let api = Api::start().await;
    let admin = api.admin();
    let (_, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    let paths = doc["paths"].as_object().unwrap();
    let any = uuid::Uuid::new_v4().to_string();
    for r in postbox::api::Route::ALL.iter().map(|r| r.spec()) {
        assert!(
            paths
                .get(r.path)
                .and_then(|p| p.get(r.method.to_lowercase()))
                .is_some(),
            "{} {} missing from the document",
            r.method,
            r.path
        );
        let path = r.path.replace("{id}", &any).replace("{deliveryId}", &any);
        let (s, j) = api.call(r.method, &path, Some(&admin), None).await;
        assert!(s < 500, "{} {path}: {s} {j}", r.method);
        let unknown_route = s == 404 && j["error"]["message"] == "no such route";
        assert!(!unknown_route, "{} {} is not routed", r.method, r.path);
        assert!(s != 405 && s != 501, "{} {}: {s}", r.method, r.path);
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, postbox::api::Route::ALL.len());
}
