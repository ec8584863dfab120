//! One signed HTTP attempt, in two steps. `prepare` checks the target and
//! builds the request once (URL parsed, signing keys decoded, body and
//! headers as docs/WEBHOOKS.md describes them); `send_prepared` sends it
//! through a long-lived client (keep-alive pools, no redirects, a resolver
//! that refuses non-public addresses unless allowed), reads at most 16 KiB
//! of the answer, and turns whatever happens into an `Attempt`. A request is
//! never sent unsigned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::clock::SharedClock;
use crate::config::DispatchConfig;
use crate::dispatch::retry::{parse_retry_after, Attempt};
use crate::net;
use crate::signing::{signature_header, SigningKey};
use crate::store::{ClaimedBatch, ClaimedDelivery};
use crate::template::{self, EventView};
use uuid::Uuid;

/// How much of a response body is kept.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// Header names Postbox sets itself; custom headers may not use them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-webhook-event",
    "x-webhook-delivery",
    "x-webhook-attempt",
    "x-webhook-batch-size",
];

/// The User-Agent of every request: `postbox/<version>`.
pub const USER_AGENT: &str = concat!("postbox/", env!("CARGO_PKG_VERSION"));

/// What a [`Sender`] needs to know: the part of
/// [`DispatchConfig`] that shapes one request.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Time limit of one attempt (connect, headers and body).
    pub request_timeout: Duration,
    /// Allow targets on loopback, private and other non-public addresses.
    pub allow_private_targets: bool,
    /// Refuse http:// targets.
    pub require_https: bool,
}

// Written here, beside `SenderConfig`, so that `config` need not know the
// sender: a new sender setting changes this one file.
impl DispatchConfig {
    /// The sender's settings taken from the dispatcher's.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig {
            request_timeout: self.request_timeout,
            allow_private_targets: self.allow_private_targets,
            require_https: self.require_https,
        }
    }
}

/// Sends signed webhook requests through one long-lived HTTP client; cheap
/// to clone (the client's connection pools are shared).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    config: SenderConfig,
    clock: SharedClock,
}

/// A request checked and built once, ready to send.
#[derive(Debug)]
pub struct Prepared {
    /// The target, parsed once and allowed by the sender's rules.
    pub url: Url,
    /// When the attempt started: the signature's timestamp.
    pub started_at: DateTime<Utc>,
    headers: HeaderMap,
    body: Bytes,
}

/// The request body: byte-identical on every attempt of an event.
pub fn event_body(d: &ClaimedDelivery) -> Bytes {
    Bytes::from(standard_body(
        d.event_id,
        &d.event_type,
        d.event_created_at,
        &d.payload,
    ))
}

/// SPEC section 4's body, the payload (JSON text) embedded verbatim.
pub fn standard_body(
    id: Uuid,
    event_type: &str,
    created_at: DateTime<Utc>,
    payload: &str,
) -> String {
    let ts = created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let ty = serde_json::to_string(event_type).expect("a string serializes");
    format!("{{\"id\":\"{id}\",\"type\":{ty},\"timestamp\":\"{ts}\",\"data\":{payload}}}")
}

/// The body of one claim: a batch's body (standard event bodies, whatever
/// the template), the webhook's template rendered
/// from the event, or the standard body. Deterministic: the same bytes on
/// every attempt (of the same batch; of the same event and template). Fails
/// only when the template cannot render, with the reason.
pub fn request_body(d: &ClaimedDelivery) -> Result<Bytes, String> {
    if let Some(batch) = &d.batch {
        return Ok(batch_body(batch));
    }
    let Some(template) = d.template.as_ref().filter(|t| !t.is_null()) else {
        return Ok(event_body(d));
    };
    let event = EventView {
        id: d.event_id,
        event_type: &d.event_type,
        created_at: d.event_created_at,
        payload: &d.payload,
    };
    match template::render(template, &event) {
        Ok(Some(body)) => Ok(Bytes::from(body)),
        Ok(None) => Ok(event_body(d)),
        Err(e) => Err(format!("template: {e}: not sent")),
    }
}

/// A batch request's body (SPEC 7.3): `{"id": <batch id>, "type": "batch",
/// "timestamp": <the batch id's UUIDv7 time>, "data": [<each event's
/// standard body>]}`, in event order; the same bytes on every retry.
pub fn batch_body(batch: &ClaimedBatch) -> Bytes {
    let millis = batch
        .id
        .get_timestamp()
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or(0);
    let at = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default();
    let mut out = format!(
        "{{\"id\":\"{}\",\"type\":\"batch\",\"timestamp\":\"{}\",\"data\":[",
        batch.id,
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    for (i, m) in batch.members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&standard_body(
            m.event_id,
            &m.event_type,
            m.event_created_at,
            &m.payload,
        ));
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// Text safe to store in Postgres: valid UTF-8 without NUL characters.
pub fn storable_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

impl Sender {
    /// A sender whose resolver refuses non-public addresses (unless
    /// `config.allow_private_targets`). Fails only if the HTTP client cannot
    /// be built.
    pub fn new(config: SenderConfig, clock: SharedClock) -> Result<Sender, reqwest::Error> {
        Sender::with_resolver(config, clock, net::guarded_resolver())
    }

    /// Like `new`, with the resolver used when private targets are refused
    /// (tests inject DNS answers through it).
    pub fn with_resolver(
        config: SenderConfig,
        clock: SharedClock,
        resolver: Arc<net::GuardedResolver>,
    ) -> Result<Sender, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true);
        if !config.allow_private_targets {
            builder = builder.dns_resolver(resolver);
        }
        Ok(Sender {
            client: builder.build()?,
            config,
            clock,
        })
    }

    /// Why this target may not be called now, if it may not.
    fn refusal(&self, url: &Url) -> Option<String> {
        match url.scheme() {
            "https" => {}
            "http" if self.config.require_https => {
                return Some(
                    "blocked target: http:// URLs are refused (POSTBOX_REQUIRE_HTTPS)".into(),
                )
            }
            "http" => {}
            other => return Some(format!("unsupported URL scheme {other}")),
        }
        net::literal_target_refusal(url, self.config.allow_private_targets)
    }

    /// Checks the target and the secret and builds the signed request, or
    /// says why it may not be sent. `d.url` goes through the API's URL rule
    /// (`net::parse_target_url`) again: a row written with SQL may hold a
    /// URL that a parser would repair into another target.
    pub fn prepare(
        &self,
        d: &ClaimedDelivery,
        started_at: DateTime<Utc>,
    ) -> Result<Prepared, String> {
        let url = net::parse_target_url(&d.url, false).map_err(|e| format!("invalid URL: {e}"))?;
        if let Some(reason) = self.refusal(&url) {
            return Err(reason);
        }
        // Never send an unsigned request (a secret written by SQL can be malformed).
        let key = SigningKey::from_secret(&d.secret)
            .map_err(|_| "the webhook's secret is not a valid whsec_ secret: not sent")?;
        let mut keys = vec![key];
        // Still signing with the old secret during a rotation's grace period.
        keys.extend(
            d.previous_secret
                .as_deref()
                .and_then(|s| SigningKey::from_secret(s).ok()),
        );
        let body = request_body(d)?;
        let headers = self.headers(d, &keys, &body, started_at.timestamp());
        Ok(Prepared {
            url,
            started_at,
            headers,
            body,
        })
    }

    fn headers(
        &self,
        d: &ClaimedDelivery,
        keys: &[SigningKey],
        body: &[u8],
        timestamp: i64,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        // Custom headers first, so that nothing below can be overridden.
        if let Some(custom) = d.headers.as_object() {
            for (name, value) in custom {
                let (Some(value), Ok(name)) = (value.as_str(), HeaderName::try_from(name.as_str()))
                else {
                    continue;
                };
                if RESERVED_HEADERS.contains(&name.as_str()) {
                    continue;
                }
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
        }
        // A batch is one message: its id is the batch's.
        let msg_id = d.batch.as_ref().map_or(d.event_id, |b| b.id).to_string();
        let sig = signature_header(keys, &msg_id, timestamp, body);
        let set = |h: &mut HeaderMap, name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        set(&mut h, "content-type", "application/json".into());
        set(&mut h, "webhook-id", msg_id);
        set(&mut h, "webhook-timestamp", timestamp.to_string());
        set(&mut h, "webhook-signature", sig);
        set(&mut h, "user-agent", USER_AGENT.into());
        match &d.batch {
            None => {
                set(&mut h, "x-webhook-event", d.event_type.clone());
                set(&mut h, "x-webhook-delivery", d.id.to_string());
            }
            Some(batch) => {
                set(&mut h, "x-webhook-event", "batch".into());
                set(
                    &mut h,
                    "x-webhook-batch-size",
                    batch.members.len().to_string(),
                );
            }
        }
        set(&mut h, "x-webhook-attempt", d.attempt.to_string());
        h
    }

    /// Prepares and sends one attempt now (the API's test send). Never
    /// fails: every problem becomes part of the `Attempt`.
    pub async fn send(&self, d: &ClaimedDelivery) -> Attempt {
        self.send_at(d, self.clock.now()).await
    }

    /// Prepares the request and sends it, or records why it was not sent.
    /// Never fails.
    pub async fn send_at(&self, d: &ClaimedDelivery, started_at: DateTime<Utc>) -> Attempt {
        match self.prepare(d, started_at) {
            Ok(request) => self.send_prepared(request).await,
            Err(reason) => Attempt::not_sent(started_at, reason),
        }
    }

    /// Sends a prepared request. Never fails: every problem becomes part of
    /// the `Attempt`.
    pub async fn send_prepared(&self, request: Prepared) -> Attempt {
        let Prepared {
            url,
            started_at,
            headers,
            body,
        } = request;
        let t0 = Instant::now();
        let mut attempt = Attempt {
            started_at,
            ..Default::default()
        };
        let request = self.client.post(url).headers(headers).body(body).send();
        let result = tokio::time::timeout(self.config.request_timeout, async {
            let response = request.await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, started_at));
            let mut kept = Vec::new();
            let mut stream = response.bytes_stream();
            while kept.len() < MAX_RESPONSE_BODY {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        let room = MAX_RESPONSE_BODY - kept.len();
                        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, retry_after, kept))
        })
        .await;
        attempt.duration_ms = t0.elapsed().as_millis().min(i32::MAX as u128) as i32;
        match result {
            Err(_) => {
                attempt.error = Some(format!(
                    "timed out after {} ms",
                    self.config.request_timeout.as_millis()
                ))
            }
            Ok(Err(e)) => attempt.error = Some(describe(&e)),
            Ok(Ok((status, retry_after, kept))) => {
                attempt.status = Some(status);
                attempt.body = Some(storable_text(&kept));
                if !(200..300).contains(&status) {
                    attempt.error = Some(format!("endpoint answered HTTP {status}"));
                    if status == 429 || status == 503 {
                        attempt.retry_after = retry_after;
                    }
                }
            }
        }
        attempt
    }
}

/// A reqwest error as one line, with its causes (DNS, TLS, refused, blocked).
/// A target refused by the resolver reads `blocked target: ...` first, like
/// a refused literal address. Only the causes are listed, never the error's
/// own Display: that one carries the URL, whose query or userinfo may hold a
/// credential of the receiver.
fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(blocked) = s.downcast_ref::<net::BlockedHost>() {
            return storable_text(blocked.to_string().as_bytes());
        }
        let text = s.to_string();
        // Wrappers such as io::Error hide the inner error from downcasting
        // but print its text.
        if let Some(at) = text.find("blocked target: ") {
            return storable_text(&text.as_bytes()[at..]);
        }
        causes.push(text);
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    for c in causes {
        // hyper-util repeats a cause's text in its wrapper; keep one copy.
        if !msg.ends_with(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    storable_text(msg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn body_embeds_the_payload_verbatim() {
        let d = ClaimedDelivery {
            event_id: Uuid::parse_str("f47ac10b-58cc-4372-a567-0e02b2c3d479").unwrap(),
            payload: r#"{"id": 42, "big": 123456789012345678901234567890}"#.into(),
            event_created_at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 28, 19, 47, 22)
                .unwrap()
                + chrono::Duration::milliseconds(123),
            ..ClaimedDelivery::sample()
        };
        let body = event_body(&d);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"id":"f47ac10b-58cc-4372-a567-0e02b2c3d479","type":"project.updated","timestamp":"2026-11-28T19:47:22.123Z","data":{"id": 42, "big": 123456789012345678901234567890}}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"]["id"], 42);
    }

    #[test]
    fn a_batch_body_wraps_each_event_body_and_takes_its_time_from_the_batch_id() {
        use crate::store::BatchMember;
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 19, 47, 22)
            .unwrap();
        let member = |n: u128, payload: &str| BatchMember {
            delivery_id: Uuid::from_u128(100 + n),
            event_id: Uuid::from_u128(n),
            event_type: "project.updated".into(),
            attempt: 1,
            payload: payload.into(),
            event_created_at: at,
            ordering_key: None,
        };
        // A UUIDv7 of 2026-11-28T19:47:23.456Z.
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_795_895_243, 456_000_000);
        let batch = ClaimedBatch {
            id: Uuid::new_v7(ts),
            members: vec![member(1, r#"{"a": 1}"#), member(2, r#"{"b": [2]}"#)],
        };
        let body = batch_body(&batch);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], batch.id.to_string());
        assert_eq!(v["type"], "batch");
        assert_eq!(v["timestamp"], "2026-11-28T19:47:23.456Z");
        assert_eq!(v["data"][0]["id"], Uuid::from_u128(1).to_string());
        assert_eq!(v["data"][1]["data"], serde_json::json!({"b": [2]}));
        assert_eq!(batch_body(&batch), body, "the same bytes every time");
        let d = ClaimedDelivery {
            batch: Some(batch),
            template: Some(serde_json::json!("slack")),
            ..ClaimedDelivery::sample()
        };
        assert_eq!(
            request_body(&d).unwrap(),
            body,
            "a batch ignores the template"
        );
    }

    #[test]
    fn stored_text_has_no_nul_and_is_utf8() {
        assert_eq!(storable_text(b"a\0b\xff"), "a\u{FFFD}b\u{FFFD}");
    }
}
