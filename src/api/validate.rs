//! The rules for every input field. Each validator takes the field's raw JSON
//! and answers the typed value or a 400 naming the field and the rule. The
//! limits are constants here so that the OpenAPI document states the same.

use serde_json::Value;
use warp::http::{HeaderName, HeaderValue};

use super::envelope::ApiError;
use super::request::Ctx;
use super::ApiState;
use crate::dispatch::sender::RESERVED_HEADERS;
use crate::store::{DeliveryStatus, EventType};

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 1000;
pub const URL_MAX: usize = 2048;
pub const EVENTS_MAX: usize = 100;
pub const HEADERS_MAX: usize = 20;
pub const HEADER_VALUE_MAX: usize = 4096;
pub const MAX_RETRIES: (i64, i64) = (0, 10);
pub const DEFAULT_MAX_RETRIES: i32 = 3;
pub const RETRY_DELAY: (i64, i64) = (10, 3600);
pub const DEFAULT_RETRY_DELAY: i32 = 60;
/// Longest rotation grace period: 7 days.
pub const GRACE_MAX: i64 = 7 * 86400;
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
pub const PAGE_MAX: i64 = 1_000_000;
pub const LIMIT_MAX: i64 = 100;
pub const DEFAULT_LIMIT: i64 = 20;

/// A field the request must carry.
pub fn required(field: &str, v: Option<Value>) -> Result<Value, ApiError> {
    match v {
        None | Some(Value::Null) => Err(ApiError::validation(field, "is required")),
        Some(v) => Ok(v),
    }
}

/// Text of `min..=max` characters, not blank.
pub fn text(field: &str, v: Value, max: usize) -> Result<String, ApiError> {
    let Value::String(s) = v else {
        return Err(ApiError::validation(field, "must be a string"));
    };
    if s.trim().is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.contains('\0') {
        return Err(ApiError::validation(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(s)
}

pub fn name(v: Value) -> Result<String, ApiError> {
    text("name", v, NAME_MAX)
}

/// `null` or `""` clears the description.
pub fn description(v: Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v => text("description", v, DESCRIPTION_MAX).map(Some),
    }
}

/// An integer in `range`.
pub fn int(field: &str, v: Value, (min, max): (i64, i64)) -> Result<i32, ApiError> {
    let rule = format!("must be an integer from {min} to {max}");
    let n = v
        .as_i64()
        .ok_or_else(|| ApiError::validation(field, rule.clone()))?;
    if !(min..=max).contains(&n) {
        return Err(ApiError::validation(field, rule));
    }
    i32::try_from(n).map_err(|_| ApiError::validation(field, rule))
}

pub fn boolean(field: &str, v: Value) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::validation(field, "must be true or false"))
}

/// An http(s) URL, parsed strictly, that the SSRF guard lets through.
pub async fn url(state: &ApiState, v: Value) -> Result<String, ApiError> {
    let Value::String(raw) = v else {
        return Err(ApiError::validation("url", "must be a string"));
    };
    if raw.len() > URL_MAX {
        return Err(ApiError::validation(
            "url",
            format!("must be at most {URL_MAX} characters"),
        ));
    }
    if !raw.is_ascii() {
        return Err(ApiError::validation(
            "url",
            "must be ASCII: write an internationalised host name in punycode (xn--...) and percent-encode the path",
        ));
    }
    if raw.trim() != raw || raw.is_empty() {
        return Err(ApiError::validation(
            "url",
            "must be an absolute URL without surrounding spaces",
        ));
    }
    let parsed = url::Url::parse(&raw)
        .map_err(|e| ApiError::validation("url", format!("is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::validation(
            "url",
            format!(
                "scheme {}:// is not allowed; use http:// or https://",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host().is_none() {
        return Err(ApiError::validation("url", "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::validation(
            "url",
            "must not carry credentials; use custom headers for authentication",
        ));
    }
    crate::net::validate_target(&parsed, state.allow_private_targets, state.require_https)
        .await
        .map_err(|reason| ApiError::validation("url", reason))?;
    Ok(parsed.to_string())
}

/// Event subscriptions: catalogue types, `group.*` for a catalogue group, or
/// `*`. Duplicates are dropped, order kept.
pub fn events(v: Value, catalogue: &[EventType]) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(ApiError::validation(
            "events",
            "must be an array of event types",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::validation(
            "events",
            "must name at least one event type",
        ));
    }
    if items.len() > EVENTS_MAX {
        return Err(ApiError::validation(
            "events",
            format!("must have at most {EVENTS_MAX} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(ApiError::validation(
                "events",
                "every entry must be a string",
            ));
        };
        let known = s == "*"
            || catalogue.iter().any(|t| t.name == s)
            || s.strip_suffix(".*").is_some_and(|group| {
                !group.is_empty()
                    && catalogue
                        .iter()
                        .any(|t| t.name.split('.').next() == Some(group))
            });
        if !known {
            return Err(ApiError::validation(
                "events",
                format!(
                    "unknown event type {s:?}: use a type from GET /api/webhooks/events, group.* or *"
                ),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Custom headers: an object of at most 20 string values with valid names
/// and values, none of them a name Postbox sets itself.
pub fn headers(v: Value) -> Result<Value, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::validation(
            "headers",
            "must be an object of name: value strings",
        ));
    };
    if map.len() > HEADERS_MAX {
        return Err(ApiError::validation(
            "headers",
            format!("must have at most {HEADERS_MAX} entries"),
        ));
    }
    let mut out = serde_json::Map::new();
    for (name, value) in map {
        let field = format!("headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::validation(&field, "is not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(ApiError::validation(
                &field,
                "is set by Postbox and cannot be overridden",
            ));
        }
        let Value::String(value) = value else {
            return Err(ApiError::validation(&field, "must be a string"));
        };
        if value.len() > HEADER_VALUE_MAX {
            return Err(ApiError::validation(
                &field,
                format!("must be at most {HEADER_VALUE_MAX} bytes"),
            ));
        }
        // Visible ASCII and tabs only: what every HTTP stack accepts (and
        // what the OpenAPI document says).
        let ascii = value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        if !ascii || HeaderValue::from_str(&value).is_err() {
            return Err(ApiError::validation(
                &field,
                "is not a valid header value: visible ASCII and tabs only (no CR, LF or other control characters)",
            ));
        }
        out.insert(header.as_str().to_string(), Value::String(value));
    }
    Ok(Value::Object(out))
}

/// `page` (>= 1, default 1) and `limit` (1-100, default 20) from the query,
/// plus the optional `status` filter when `with_status`.
pub struct Page {
    pub page: i64,
    pub limit: i64,
    pub status: Option<DeliveryStatus>,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.limit
    }
}

pub fn page(ctx: &Ctx, with_status: bool) -> Result<Page, ApiError> {
    let allowed: &[&str] = if with_status {
        &["page", "limit", "status"]
    } else {
        &["page", "limit"]
    };
    let mut p = Page {
        page: 1,
        limit: DEFAULT_LIMIT,
        status: None,
    };
    for (k, v) in ctx.query_pairs(allowed)? {
        match k.as_str() {
            "page" => {
                p.page = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::validation(
                            "page",
                            format!("must be an integer from 1 to {PAGE_MAX}"),
                        )
                    })?
            }
            "limit" => {
                p.limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=LIMIT_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::validation(
                            "limit",
                            format!("must be an integer from 1 to {LIMIT_MAX}"),
                        )
                    })?
            }
            _ => {
                p.status = Some(DeliveryStatus::parse(&v).ok_or_else(|| {
                    ApiError::validation(
                        "status",
                        "must be one of pending, sending, success, failed, retrying",
                    )
                })?)
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue() -> Vec<EventType> {
        ["project.created", "project.updated", "webhook.test"]
            .iter()
            .map(|n| EventType {
                name: n.to_string(),
                description: String::new(),
            })
            .collect()
    }

    #[test]
    fn events_accept_types_groups_and_star_only() {
        let c = catalogue();
        assert_eq!(
            events(json!(["project.created", "project.*", "*", "*"]), &c).unwrap(),
            vec!["project.created", "project.*", "*"]
        );
        for bad in [
            json!([]),
            json!("*"),
            json!([1]),
            json!(["nope.*"]),
            json!([".*"]),
            json!(["project.nope"]),
        ] {
            assert!(events(bad.clone(), &c).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_refuse_reserved_invalid_and_too_many() {
        assert!(headers(json!({"X-Api-Key": "k"})).is_ok());
        assert!(headers(json!({"Webhook-Signature": "x"})).is_err());
        assert!(headers(json!({"bad name": "x"})).is_err());
        assert!(headers(json!({"x-a": "a\r\nb"})).is_err());
        assert!(headers(json!({"x-a": 1})).is_err());
        let many: serde_json::Map<String, Value> =
            (0..21).map(|i| (format!("x-{i}"), json!("v"))).collect();
        assert!(headers(Value::Object(many)).is_err());
    }

    #[test]
    fn ints_are_range_checked() {
        assert_eq!(int("maxRetries", json!(10), MAX_RETRIES).unwrap(), 10);
        for bad in [json!(11), json!(-1), json!(1.5), json!("3"), json!(null)] {
            assert!(int("maxRetries", bad, MAX_RETRIES).is_err());
        }
    }
}
