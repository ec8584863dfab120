//! Delivery hardening with real sockets: the SSRF guard (literal addresses,
//! names, numeric tricks, resolver answers), HTTPS-only mode, and hostile
//! receivers (redirects, huge, endless and trickled bodies, silence, invalid
//! bytes, 410, 429). A blocked attempt is a recorded failure, never a request.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use postbox::config::DispatchConfig;
use postbox::dispatch::sender::{Sender, SenderConfig, MAX_RESPONSE_BODY};
use postbox::dispatch::Dispatcher;
use postbox::net::GuardedResolver;
use postbox::store::ClaimedDelivery;
use serde_json::json;
use uuid::Uuid;

use crate::support::hostile::{Hostile, HostileReceiver};
use crate::support::*;

/// One recorded attempt, with the URL of its webhook.
#[derive(Debug)]
struct Recorded {
    url: String,
    code: Option<i32>,
    body: Option<String>,
    error: Option<String>,
    duration_ms: i32,
}

async fn attempts(c: &tokio_postgres::Client) -> Vec<Recorded> {
    c.query(
        "SELECT w.url, a.response_code, a.response_body, a.error_message, a.duration_ms
         FROM postbox.delivery_attempts a
         JOIN postbox.deliveries d ON d.id = a.delivery_id
         JOIN postbox.webhooks w ON w.id = d.webhook_id
         ORDER BY w.url",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| Recorded {
        url: r.get(0),
        code: r.get(1),
        body: r.get(2),
        error: r.get(3),
        duration_ms: r.get(4),
    })
    .collect()
}

fn guarded() -> DispatchConfig {
    DispatchConfig {
        allow_private_targets: false,
        ..dispatch_config()
    }
}

/// Inserts one webhook per URL (plain SQL, as a psql user would), publishes
/// one event, and runs one dispatcher pass: every webhook gets one attempt.
async fn deliver_once(db: &TestDb, urls: &[String], config: DispatchConfig) -> Vec<Recorded> {
    let c = db.client().await;
    for url in urls {
        NewWebhook::new("user_h", url.clone(), &["*"])
            .insert(&c)
            .await;
    }
    publish(&c, "project.updated", json!({"id": 1}), "user_h").await;
    let d = Dispatcher::new(db.store(), config, system_clock()).unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!(report.attempts, urls.len());
    let got = attempts(&c).await;
    assert_eq!(got.len(), urls.len());
    got
}

fn assert_blocked(got: &[Recorded]) {
    for a in got {
        let err = a.error.as_deref().unwrap_or("");
        // Numeric spellings that a URL parser would turn into another
        // address (0177.0.0.1, 2130706433) are refused by the URL rule
        // before the address check; either way nothing is sent.
        assert!(
            err.starts_with("blocked target") || err.starts_with("invalid URL: must write an IPv"),
            "{}: {err:?}",
            a.url
        );
        assert_eq!(a.code, None, "{}", a.url);
    }
}

#[tokio::test]
async fn private_targets_get_no_request_and_record_a_blocked_target() {
    let db = TestDb::new().await;
    let rx = Receiver::ok().await;
    let port = rx.addr.port();
    let mut urls: Vec<String> = [
        "http://127.0.0.1:{p}/hook",
        "http://localhost:{p}/hook",
        "http://LocalHost.:{p}/hook",
        "http://2130706433:{p}/hook",
        "http://0x7f.1:{p}/hook",
        "http://127.1:{p}/hook",
        "http://0177.0.0.1:{p}/hook",
        "http://0:{p}/hook",
        "http://[::ffff:127.0.0.1]:{p}/hook",
        "http://[::ffff:7f00:1]:{p}/hook",
        "http://169.254.169.254:{p}/latest/meta-data",
    ]
    .iter()
    .map(|u| u.replace("{p}", &port.to_string()))
    .collect();
    // IPv6 loopback, with its own listener when the sandbox has one.
    let v6 = match tokio::net::TcpListener::bind("[::1]:0").await {
        Ok(l) => {
            drop(l);
            let h = HostileReceiver::start_on("[::1]:0", Hostile::Raw(ok_response())).await;
            urls.push(format!("http://[::1]:{}/hook", h.port()));
            Some(h)
        }
        Err(_) => {
            urls.push(format!("http://[::1]:{port}/hook"));
            None
        }
    };
    let got = deliver_once(&db, &urls, guarded()).await;
    assert_blocked(&got);
    assert_eq!(rx.count(), 0, "a blocked target received a request");
    if let Some(h) = v6 {
        assert_eq!(h.connections(), 0);
    }
    // The same rows with private targets allowed: the receiver is reachable,
    // so the refusals above came from the guard and not from the network.
    let db2 = TestDb::new().await;
    let got = deliver_once(&db2, &urls[..1], dispatch_config()).await;
    assert_eq!(got[0].code, Some(200));
    assert_eq!(rx.count(), 1);
}

fn ok_response() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_vec()
}

fn claimed(url: String) -> ClaimedDelivery {
    ClaimedDelivery {
        id: Uuid::new_v4(),
        webhook_id: Uuid::new_v4(),
        event_id: Uuid::new_v4(),
        event_type: "project.updated".into(),
        attempt: 1,
        payload: r#"{"id": 1}"#.into(),
        event_created_at: Utc::now(),
        url,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        headers: json!({}),
        max_retries: 3,
        retry_delay_seconds: 60,
        retry_schedule: None,
        webhook_active: true,
        template: None,
        ordering_key: None,
        skip_failed: false,
        in_flight_limited: false,
        batch: None,
        lease_expires_at: chrono::Utc::now() + chrono::Duration::seconds(60),
    }
}

/// A resolver whose every answer is `ip` (a name that resolves to loopback,
/// or a DNS rebinding that flips to a private address at connect time).
fn resolving_to(ip: &'static str) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver::with_lookup(Arc::new(move |_host| {
        Box::pin(async move { Ok(vec![std::net::SocketAddr::new(ip.parse().unwrap(), 0)]) })
    })))
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_at_connect_time() {
    let rx = Receiver::ok().await;
    for ip in ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"] {
        let sender = Sender::with_resolver(
            SenderConfig {
                request_timeout: Duration::from_secs(5),
                allow_private_targets: false,
                require_https: false,
            },
            system_clock(),
            resolving_to(ip),
        )
        .unwrap();
        // The API check passed long ago (the name was public then); only the
        // resolver stands between this row and the internal address.
        let a = sender
            .send(&claimed(format!(
                "http://hooks.rebind.test:{}/hook",
                rx.addr.port()
            )))
            .await;
        let err = a.error.unwrap_or_default();
        assert!(err.starts_with("blocked target"), "{ip}: {err}");
        assert!(err.contains("hooks.rebind.test"), "{err}");
        assert_eq!(a.status, None);
    }
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn https_only_mode_refuses_http_at_send_time() {
    let db = TestDb::new().await;
    let rx = Receiver::ok().await;
    let got = deliver_once(
        &db,
        &[rx.url()],
        DispatchConfig {
            require_https: true,
            ..dispatch_config()
        },
    )
    .await;
    let err = got[0].error.as_deref().unwrap();
    assert!(
        err.starts_with("blocked target") && err.contains("http://"),
        "{err}"
    );
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn redirects_are_failures_and_the_location_gets_nothing() {
    let db = TestDb::new().await;
    let target = Receiver::ok().await;
    let location = target.url();
    let mut urls = Vec::new();
    let mut redirectors = Vec::new();
    for status in [301u16, 302, 303, 307, 308] {
        let loc = location.clone();
        let r = Receiver::start(Arc::new(move |_| Answer {
            headers: vec![("location".into(), loc.clone())],
            ..Answer::status(status)
        }))
        .await;
        urls.push(r.url());
        redirectors.push(r);
    }
    let got = deliver_once(&db, &urls, dispatch_config()).await;
    for a in &got {
        let code = a.code.unwrap();
        assert!((301..=308).contains(&code));
        assert_eq!(
            a.error.as_deref(),
            Some(format!("endpoint answered HTTP {code}").as_str())
        );
    }
    assert_eq!(target.count(), 0, "a redirect was followed");
    let c = db.client().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'retrying'"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_2_mib_answer_is_stored_as_its_first_16_kib() {
    let db = TestDb::new().await;
    let rx = Receiver::start(Arc::new(|_| Answer {
        body: "z".repeat(2 * 1024 * 1024),
        ..Answer::status(500)
    }))
    .await;
    let got = deliver_once(&db, &[rx.url()], dispatch_config()).await;
    assert_eq!(got[0].code, Some(500));
    assert_eq!(got[0].body.as_deref().unwrap().len(), MAX_RESPONSE_BODY);
    assert_eq!(MAX_RESPONSE_BODY, 16384);
}

#[tokio::test]
async fn an_endless_answer_costs_16_kib_and_no_time() {
    let db = TestDb::new().await;
    let h = HostileReceiver::start(Hostile::Endless).await;
    let got = deliver_once(&db, &[h.url()], dispatch_config()).await;
    assert_eq!(got[0].code, Some(200));
    assert_eq!(got[0].error, None);
    assert_eq!(got[0].body.as_deref().unwrap().len(), MAX_RESPONSE_BODY);
    assert!(got[0].duration_ms < 3000, "{} ms", got[0].duration_ms);
    // The connection is dropped, not drained: the writer's next write fails.
    assert!(
        h.writers_stopped(1, Duration::from_secs(5)).await,
        "the endless writer is still being read"
    );
}

fn short_timeout() -> DispatchConfig {
    DispatchConfig {
        request_timeout: Duration::from_millis(1500),
        ..dispatch_config()
    }
}

#[tokio::test]
async fn a_trickling_body_is_cut_off_at_the_request_timeout() {
    let db = TestDb::new().await;
    let h = HostileReceiver::start(Hostile::Trickle {
        every: Duration::from_millis(100),
    })
    .await;
    let t0 = std::time::Instant::now();
    let got = deliver_once(&db, &[h.url()], short_timeout()).await;
    let err = got[0].error.as_deref().unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        (1400..4000).contains(&got[0].duration_ms),
        "{} ms",
        got[0].duration_ms
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    // The receiver was answering all along: headers in time do not extend the deadline.
    assert!(h.written.load(std::sync::atomic::Ordering::SeqCst) >= 5);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let db = TestDb::new().await;
    let h = HostileReceiver::start(Hostile::Silent).await;
    let got = deliver_once(&db, &[h.url()], short_timeout()).await;
    let err = got[0].error.as_deref().unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(got[0].code, None);
    assert!(got[0].duration_ms < 4000);
    assert_eq!(h.connections(), 1);
}

#[tokio::test]
async fn invalid_utf8_and_nul_bytes_are_stored_safely() {
    let db = TestDb::new().await;
    let body: &[u8] = b"ok\x00\xff\xfe<\xc3\x28>end";
    let mut raw =
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\nx-junk: \xff\r\n"
            .to_vec();
    raw.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    raw.extend_from_slice(body);
    let h = HostileReceiver::start(Hostile::Raw(raw)).await;
    let got = deliver_once(&db, &[h.url()], dispatch_config()).await;
    assert_eq!(got[0].code, Some(500));
    let stored = got[0].body.as_deref().unwrap();
    assert!(!stored.contains('\0'));
    assert!(stored.starts_with("ok\u{FFFD}"), "{stored:?}");
    assert!(stored.ends_with("end"), "{stored:?}");
}

#[tokio::test]
async fn gone_disables_the_webhook_at_once() {
    let db = TestDb::new().await;
    let rx = Receiver::start(Arc::new(|_| Answer::status(410))).await;
    let got = deliver_once(&db, &[rx.url()], dispatch_config()).await;
    assert_eq!(got[0].code, Some(410));
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT active, disabled_at IS NOT NULL, disabled_reason FROM postbox.webhooks",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert!(row.get::<_, String>(2).contains("410"));
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.deliveries WHERE status = 'failed'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured() {
    let db = TestDb::new().await;
    let slow = Receiver::start(Arc::new(|_| Answer {
        headers: vec![("retry-after".into(), "3600".into())],
        ..Answer::status(429)
    }))
    .await;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(7200));
    let busy = Receiver::start(Arc::new(move |_| Answer {
        headers: vec![("retry-after".into(), date.clone())],
        ..Answer::status(503)
    }))
    .await;
    let before = Utc::now();
    deliver_once(&db, &[slow.url(), busy.url()], dispatch_config()).await;
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT w.url, d.status::text, d.next_attempt_at FROM postbox.deliveries d
             JOIN postbox.webhooks w ON w.id = d.webhook_id",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let url: String = r.get(0);
        let status: String = r.get(1);
        let next: chrono::DateTime<Utc> = r.get(2);
        assert_eq!(status, "retrying");
        let wait = (next - before).num_seconds();
        // Without Retry-After the first retry would come after ~60 s.
        let want = if url == slow.url() { 3600 } else { 7200 };
        assert!(
            (want - 5..=want + 400).contains(&wait),
            "{url}: next attempt in {wait} s"
        );
    }
}

#[tokio::test]
async fn credentials_in_urls_and_secrets_never_reach_recorded_errors() {
    let db = TestDb::new().await;
    // A port with nothing listening: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let urls = [
        format!("http://alice:hunter2@127.0.0.1:{closed}/hook?token=s3cr3t-token"),
        format!("http://alice:hunter2@10.1.2.3:{closed}/hook?token=s3cr3t-token"),
    ];
    let c = db.client().await;
    let (_, secret) = NewWebhook::new("user_h", urls[0].clone(), &["*"])
        .insert(&c)
        .await;
    NewWebhook::new("user_h", urls[1].clone(), &["*"])
        .insert(&c)
        .await;
    publish(&c, "project.updated", json!({"id": 1}), "user_h").await;
    // Private targets allowed for the first (so it really connects), the
    // second row checked by a guarded dispatcher.
    Dispatcher::new(db.store(), dispatch_config(), system_clock())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let got = attempts(&c).await;
    assert!(!got.is_empty());
    let text = format!(
        "{:?}",
        c.query(
            "SELECT a.error_message, d.error_message FROM postbox.delivery_attempts a
             JOIN postbox.deliveries d ON d.id = a.delivery_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, Option<String>>(0), r.get::<_, Option<String>>(1)))
        .collect::<Vec<_>>()
    );
    for needle in ["hunter2", "s3cr3t-token", secret.as_str(), "whsec_"] {
        assert!(!text.contains(needle), "{needle} leaked into {text}");
    }
    // The URL rule refuses credentials in a URL before any connection.
    assert!(
        text.contains("invalid URL: must not carry credentials"),
        "{text}"
    );
    // And the guarded path: the refusal names no credential either.
    let db2 = TestDb::new().await;
    let got = deliver_once(&db2, &urls[1..], guarded()).await;
    let err = got[0].error.as_deref().unwrap();
    assert!(
        err.starts_with("invalid URL: must not carry credentials"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !err.contains("s3cr3t"));
}
