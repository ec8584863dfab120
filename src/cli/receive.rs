//! `postbox receive`: a development receiver that prints each delivery and
//! whether its signature and timestamp verify.
//!
//! It teaches by refusing: a request whose signature does not verify gets 401
//! and the reason is printed, as a production endpoint should answer. With no
//! secret nothing is checked. `--fail-rate` answers 500 to that fraction of
//! the verified requests, to watch retries happen. Each delivery is printed as
//! one block and flushed at once, so blocks never interleave.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

use postbox::clock::SharedClock;
use postbox::signing::{verify, SigningKey, VerifyError, DEFAULT_TOLERANCE_SECS};

use super::args::ReceiveArgs;

/// Largest request body accepted: a 1 MiB payload plus its envelope, with room.
const MAX_BODY: u64 = 4 * 1024 * 1024;

/// What the receiver concluded about one request's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No `--secret` was given.
    NotChecked,
    Verified,
    Invalid(VerifyError),
}

/// A roll in 0.0..1.0 per request, compared with the fail rate.
pub type Roll = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Settings checked once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    key: Option<SigningKey>,
    fail_rate: f64,
}

impl Settings {
    pub fn from_args(args: &ReceiveArgs) -> anyhow::Result<Settings> {
        if !(0.0..=1.0).contains(&args.fail_rate) {
            anyhow::bail!(
                "--fail-rate must be between 0.0 and 1.0, not {}",
                args.fail_rate
            );
        }
        let key = match args.secret.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                SigningKey::from_secret(s)
                    .map_err(|e| anyhow::anyhow!("--secret is not a webhook secret: {e}"))?,
            ),
            None => None,
        };
        Ok(Settings {
            key,
            fail_rate: args.fail_rate,
        })
    }
}

/// Checks the Standard Webhooks headers of one request against `now` (unix seconds).
pub fn check(key: Option<&SigningKey>, headers: &HeaderMap, body: &[u8], now: i64) -> Check {
    let Some(key) = key else {
        return Check::NotChecked;
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match verify(
        key,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        body,
        now,
        DEFAULT_TOLERANCE_SECS,
    ) {
        Ok(()) => Check::Verified,
        Err(e) => Check::Invalid(e),
    }
}

/// The answer for a request: 401 when its signature is invalid, 500 when the
/// roll (0.0..1.0) falls under the fail rate, 200 otherwise.
pub fn answer(check: &Check, roll: f64, fail_rate: f64) -> StatusCode {
    match check {
        Check::Invalid(_) => StatusCode::UNAUTHORIZED,
        _ if roll < fail_rate => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    }
}

/// The block printed for one delivery received at `now`.
pub fn report(
    now: DateTime<Utc>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    check: &Check,
    status: StatusCode,
) -> String {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let signature = match check {
        Check::NotChecked => "not checked (start with --secret whsec_... to verify)".to_string(),
        Check::Verified => "verified (signature and timestamp)".to_string(),
        Check::Invalid(e) => format!("INVALID: {e}"),
    };
    let payload = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let data = v.get("data").unwrap_or(&v);
            serde_json::to_string_pretty(data).unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    // The block's first line carries the verdict, so that one grep finds it.
    let verdict = match check {
        Check::NotChecked => "signature not checked".to_string(),
        Check::Verified => "signature verified".to_string(),
        Check::Invalid(e) => format!("signature NOT verified: {e}"),
    };
    let answered = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "500 (--fail-rate: Postbox will retry)".to_string(),
        StatusCode::UNAUTHORIZED => "401 (signature not verified)".to_string(),
        s => s.as_u16().to_string(),
    };
    let mut out = format!(
        "--- delivery {} {path}: {verdict}\n\
         event      {}\n\
         webhook-id {}\n\
         delivery   {}\n\
         attempt    {}\n\
         signature  {signature}\n\
         answered   {answered}\n\
         payload\n",
        now.format("%Y-%m-%dT%H:%M:%SZ"),
        h("x-webhook-event"),
        h("webhook-id"),
        h("x-webhook-delivery"),
        h("x-webhook-attempt"),
    );
    for line in payload.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Binds `--host:--port` and serves until ctrl-c or SIGTERM, rolling
/// against the fail rate with the thread's random generator.
pub async fn run(args: ReceiveArgs, clock: SharedClock) -> anyhow::Result<()> {
    let settings = Settings::from_args(&args)?;
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let roll: Roll = Arc::new(rand::random::<f64>);
    run_on(
        listener,
        settings,
        clock,
        roll,
        postbox::app::shutdown_on_signals(),
    )
    .await
}

/// Serves on `listener` until `shutdown` fires; time comes from `clock` and
/// each request's roll against the fail rate from `roll`.
pub async fn run_on(
    listener: TcpListener,
    settings: Settings,
    clock: SharedClock,
    roll: Roll,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    // Tests (and scripts) read the address from this first line.
    println_flush(&format!(
        "postbox receive: listening on http://{addr}/ (signatures {}, fail rate {})",
        if settings.key.is_some() {
            "checked"
        } else {
            "not checked"
        },
        settings.fail_rate
    ));

    let deliveries = warp::post()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath, headers: HeaderMap, body: Bytes| {
                let now = clock.now();
                let c = check(settings.key.as_ref(), &headers, &body, now.timestamp());
                let status = answer(&c, roll(), settings.fail_rate);
                println_flush(&report(now, path.as_str(), &headers, &body, &c, status));
                let body = match &c {
                    Check::Invalid(e) => {
                        serde_json::json!({"ok": false, "error": e.to_string()})
                    }
                    _ if status.is_success() => serde_json::json!({"ok": true}),
                    _ => {
                        serde_json::json!({"ok": false, "error": "simulated failure (--fail-rate)"})
                    }
                };
                warp::reply::with_status(warp::reply::json(&body), status)
            },
        );
    // A GET answers too, so that a health check or a browser sees it is up.
    let alive = warp::get().map(|| warp::reply::json(&serde_json::json!({"ok": true})));

    postbox::app::serve_routes(deliveries.or(alive), listener, shutdown).await;
    Ok(())
}

fn println_flush(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the receiver down.
    let _ = writeln!(out, "{}", text.trim_end());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use postbox::clock::ShiftedClock;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(body: &[u8], ts: i64) -> HeaderMap {
        let key = SigningKey::from_secret(SECRET).unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert(
            "webhook-signature",
            key.sign("msg_1", ts, body).parse().unwrap(),
        );
        h
    }

    #[test]
    fn checks_signature_and_timestamp() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        let h = signed(b"{}", 1_700_000_000);
        assert_eq!(check(Some(&key), &h, b"{}", 1_700_000_000), Check::Verified);
        assert_eq!(
            check(Some(&key), &h, b"{ }", 1_700_000_000),
            Check::Invalid(VerifyError::NoMatch)
        );
        assert_eq!(
            check(Some(&key), &h, b"{}", 1_700_000_000 + 301),
            Check::Invalid(VerifyError::TooOld)
        );
        assert_eq!(check(None, &h, b"{ }", 0), Check::NotChecked);
    }

    #[test]
    fn answers_401_for_bad_signatures_and_500_under_the_fail_rate() {
        let bad = Check::Invalid(VerifyError::NoMatch);
        assert_eq!(answer(&bad, 0.99, 0.0), StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer(&Check::Verified, 0.29, 0.3),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(answer(&Check::Verified, 0.3, 0.3), StatusCode::OK);
        assert_eq!(answer(&Check::NotChecked, 0.0, 0.0), StatusCode::OK);
        assert_eq!(
            answer(&Check::NotChecked, 0.999, 1.0),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn report_shows_the_event_and_the_verdict() {
        let body = br#"{"id":"e1","type":"project.updated","timestamp":"t","data":{"id":42}}"#;
        let mut h = signed(body, 1);
        h.insert("x-webhook-event", "project.updated".parse().unwrap());
        h.insert("x-webhook-attempt", "2".parse().unwrap());
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let r = report(at, "/hook", &h, body, &Check::Verified, StatusCode::OK);
        assert!(
            r.starts_with("--- delivery 2023-11-14T22:13:20Z /hook: signature verified\n"),
            "{r}"
        );
        assert!(r.contains("event      project.updated"), "{r}");
        assert!(r.contains("attempt    2"), "{r}");
        assert!(r.contains("signature  verified"), "{r}");
        assert!(r.contains("\"id\": 42"), "{r}");
        let r = report(
            at,
            "/hook",
            &h,
            body,
            &Check::Invalid(VerifyError::NoMatch),
            StatusCode::UNAUTHORIZED,
        );
        assert!(r.contains("INVALID: no matching signature"), "{r}");
        assert!(
            r.contains(": signature NOT verified: no matching signature\n"),
            "{r}"
        );
    }

    /// The status the receiver answers a request signed now, when it runs
    /// with `clock` and a fixed `roll`.
    async fn answered(clock: SharedClock, roll: f64, fail_rate: f64) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let settings = Settings {
            key: Some(SigningKey::from_secret(SECRET).unwrap()),
            fail_rate,
        };
        let roll: Roll = Arc::new(move || roll);
        let server = run_on(listener, settings, clock, roll, CancellationToken::new());
        let client = async {
            let ts = Utc::now().timestamp();
            let mut req = reqwest::Client::new().post(&url).body("{}");
            for (name, value) in &signed(b"{}", ts) {
                req = req.header(name, value);
            }
            req.send().await.unwrap().status().as_u16()
        };
        tokio::select! {
            r = server => panic!("the receiver stopped: {r:?}"),
            status = client => status,
        }
    }

    #[tokio::test]
    async fn time_and_the_roll_are_inputs() {
        let system: SharedClock = Arc::new(postbox::clock::SystemClock);
        assert_eq!(
            answered(system.clone(), 0.49, 0.5).await,
            500,
            "a roll under the rate fails"
        );
        assert_eq!(
            answered(system, 0.5, 0.5).await,
            200,
            "a roll at the rate passes"
        );
        // An hour on the receiver's clock: a fresh signature is now too old.
        let later = ShiftedClock::default();
        later.advance(chrono::Duration::hours(1));
        assert_eq!(answered(Arc::new(later), 0.9, 0.0).await, 401);
    }
}
