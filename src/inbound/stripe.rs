//! Stripe's `Stripe-Signature` check: pure, no clock, no I/O.
//!
//! `t=<unix>,v1=<hex>[,v1=<hex>...]` where each `v1` is
//! `hex_lower(HMAC-SHA256(utf8(secret), "{t}.{raw body}"))`. The key is the
//! whole secret string (`whsec_` included, NOT base64-decoded), unlike
//! Standard Webhooks. Parsing follows stripe-python: split on `,` without
//! trimming, then on `=`; the first `t` counts; every `v1` is a candidate.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The age window of the incoming route, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Which timestamps pass, relative to `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Older than `now - max_age` is refused; 0 turns the age check off (as in stripe-python).
    pub max_age_secs: i64,
    /// Newer than `now + max_future` is refused; `None` accepts any future
    /// timestamp (stripe-python's behaviour).
    pub max_future_secs: Option<i64>,
}

impl Tolerance {
    /// Exactly what stripe-python's `verify_header(tolerance)` does.
    pub const fn library(max_age_secs: i64) -> Tolerance {
        Tolerance {
            max_age_secs,
            max_future_secs: None,
        }
    }

    /// What the route uses: 300 s in both directions. A signature dated more
    /// than 5 minutes ahead of our clock is either a clock fault or a
    /// pre-signed replay kit; Stripe's own servers never send one.
    pub const ROUTE: Tolerance = Tolerance {
        max_age_secs: TOLERANCE_SECS,
        max_future_secs: Some(TOLERANCE_SECS),
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeVerifyError {
    #[error("missing header Stripe-Signature")]
    MissingHeader,
    #[error("Stripe-Signature has no timestamp (t=) or no v1 signature")]
    Malformed,
    #[error("Stripe-Signature timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("no matching v1 signature")]
    NoMatch,
    #[error("timestamp is too old")]
    TooOld,
    #[error("timestamp is too new")]
    TooNew,
}

/// `hex_lower(HMAC-SHA256(utf8(secret), "{timestamp}.{payload}"))`.
pub fn signature_hex(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The header Stripe's library generates: `t=<ts>,v1=<hex>`.
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        signature_hex(secret, timestamp, payload)
    )
}

/// Checks `header` against the raw `payload` as if the time were `now` (unix
/// seconds). Returns the signed timestamp. The signature is checked before
/// the timestamp, as stripe-python does.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    payload: &[u8],
    now: i64,
    tolerance: Tolerance,
) -> Result<i64, StripeVerifyError> {
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(StripeVerifyError::MissingHeader)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<&str> = Vec::new();
    for item in header.split(',') {
        let mut parts = item.splitn(3, '=');
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        match key {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let (Some(ts_raw), false) = (timestamp, candidates.is_empty()) else {
        return Err(StripeVerifyError::Malformed);
    };
    if ts_raw.is_empty() || ts_raw.len() > 18 || !ts_raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StripeVerifyError::BadTimestamp);
    }
    let ts: i64 = ts_raw
        .parse()
        .map_err(|_| StripeVerifyError::BadTimestamp)?;
    let expected = signature_hex(secret, ts, payload);
    // Fold over every candidate without stopping early: the time taken does
    // not tell which entry (if any) matched.
    let matched = candidates.iter().fold(0u8, |acc, c| {
        acc | u8::from(bool::from(expected.as_bytes().ct_eq(c.as_bytes())))
    });
    if matched == 0 {
        return Err(StripeVerifyError::NoMatch);
    }
    if tolerance.max_age_secs > 0 && ts < now - tolerance.max_age_secs {
        return Err(StripeVerifyError::TooOld);
    }
    if let Some(future) = tolerance.max_future_secs {
        if ts > now + future {
            return Err(StripeVerifyError::TooNew);
        }
    }
    Ok(ts)
}

/// The parts of a Stripe event the inbox needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    pub id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("body lacks a non-empty string field {0:?}")]
    MissingField(&'static str),
}

/// Parses a verified body as a Stripe event: a JSON object with string `id` and `type`.
pub fn parse_event(payload: &[u8]) -> Result<StripeEvent, EventError> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| EventError::NotJson(e.to_string()))?;
    let obj = value.as_object().ok_or(EventError::NotObject)?;
    let field = |name: &'static str| {
        obj.get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(EventError::MissingField(name))
    };
    Ok(StripeEvent {
        id: field("id")?,
        event_type: field("type")?,
        payload: value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sha2::Digest;

    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/stripe.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).unwrap()
    }

    fn all_cases(v: &Value) -> Vec<(&'static str, &Value)> {
        let mut out = Vec::new();
        for group in ["cases", "negative_cases", "edge_cases"] {
            for case in v[group].as_array().unwrap() {
                out.push((group, case));
            }
        }
        out
    }

    #[test]
    fn payloads_are_read_byte_exact() {
        let v = vectors();
        for (group, case) in all_cases(&v) {
            let p = case["payload"].as_str().unwrap().as_bytes();
            assert_eq!(
                p.len() as u64,
                case["payload_utf8_bytes"].as_u64().unwrap(),
                "{group}/{}",
                case["name"]
            );
            assert_eq!(
                hex::encode(sha2::Sha256::digest(p)),
                case["payload_sha256"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn reproduces_every_reference_header() {
        let v = vectors();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        for case in cases {
            let secret = case["secret"].as_str().unwrap();
            let ts = case["timestamp"].as_i64().unwrap();
            let payload = case["payload"].as_str().unwrap().as_bytes();
            assert_eq!(
                signature_hex(secret, ts, payload),
                case["signature_hex"].as_str().unwrap()
            );
            assert_eq!(
                signature_header(secret, ts, payload),
                case["header"].as_str().unwrap(),
                "{}",
                case["name"]
            );
        }
    }

    #[test]
    fn verify_outcomes_match_the_reference_library() {
        let v = vectors();
        let mut checked = 0;
        for (group, case) in all_cases(&v) {
            let got = verify(
                case["secret"].as_str().unwrap(),
                case["header"].as_str(),
                case["payload"].as_str().unwrap().as_bytes(),
                case["now"].as_i64().unwrap(),
                Tolerance::library(case["tolerance"].as_i64().unwrap()),
            );
            let expect = case["verify_header"]["ok"].as_bool().unwrap();
            assert_eq!(got.is_ok(), expect, "{group}/{}: {got:?}", case["name"]);
            checked += 1;
        }
        assert_eq!(checked, 21);
    }

    #[test]
    fn construct_event_outcomes_match_the_reference_library() {
        let v = vectors();
        for (group, case) in all_cases(&v) {
            let payload = case["payload"].as_str().unwrap().as_bytes();
            let got = verify(
                case["secret"].as_str().unwrap(),
                case["header"].as_str(),
                payload,
                case["now"].as_i64().unwrap(),
                Tolerance::library(case["tolerance"].as_i64().unwrap()),
            )
            .ok()
            .and_then(|_| parse_event(payload).ok());
            let expect = &case["construct_event"];
            assert_eq!(
                got.is_some(),
                expect["ok"].as_bool().unwrap(),
                "{group}/{}",
                case["name"]
            );
            if let Some(ev) = got {
                assert_eq!(ev.id, expect["event_id"].as_str().unwrap());
                assert_eq!(ev.event_type, expect["event_type"].as_str().unwrap());
            }
        }
    }

    #[test]
    fn the_route_tolerance_also_refuses_the_far_future() {
        let v = vectors();
        let case = v["edge_cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "future_timestamp_accepted")
            .unwrap();
        let args = (
            case["secret"].as_str().unwrap(),
            case["header"].as_str(),
            case["payload"].as_str().unwrap().as_bytes(),
            case["now"].as_i64().unwrap(),
        );
        assert_eq!(
            verify(args.0, args.1, args.2, args.3, Tolerance::ROUTE),
            Err(StripeVerifyError::TooNew)
        );
        // Exactly 300 s ahead still passes; 301 s does not.
        let (secret, body, now) = ("whsec_x", b"{}".as_slice(), 1_700_000_000);
        let h = signature_header(secret, now + 300, body);
        assert!(verify(secret, Some(&h), body, now, Tolerance::ROUTE).is_ok());
        let h = signature_header(secret, now + 301, body);
        assert!(verify(secret, Some(&h), body, now, Tolerance::ROUTE).is_err());
        let h = signature_header(secret, now - 301, body);
        assert_eq!(
            verify(secret, Some(&h), body, now, Tolerance::ROUTE),
            Err(StripeVerifyError::TooOld)
        );
    }

    #[test]
    fn missing_and_odd_headers_are_refused() {
        let body = b"{}";
        assert_eq!(
            verify("s", None, body, 0, Tolerance::ROUTE),
            Err(StripeVerifyError::MissingHeader)
        );
        assert_eq!(
            verify("s", Some("t=1"), body, 1, Tolerance::ROUTE),
            Err(StripeVerifyError::Malformed)
        );
        assert_eq!(
            verify("s", Some("t=-1,v1=00"), body, 1, Tolerance::ROUTE),
            Err(StripeVerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(
                "s",
                Some("t=99999999999999999999,v1=00"),
                body,
                1,
                Tolerance::ROUTE
            ),
            Err(StripeVerifyError::BadTimestamp)
        );
    }

    #[test]
    fn events_need_an_id_and_a_type() {
        assert!(parse_event(br#"{"id":"evt_1","type":"x.y"}"#).is_ok());
        assert_eq!(
            parse_event(br#"{"type":"x.y"}"#),
            Err(EventError::MissingField("id"))
        );
        assert_eq!(
            parse_event(br#"{"id":"evt_1","type":7}"#),
            Err(EventError::MissingField("type"))
        );
        assert_eq!(parse_event(b"[1]"), Err(EventError::NotObject));
        assert!(matches!(parse_event(b"nope"), Err(EventError::NotJson(_))));
    }
}
