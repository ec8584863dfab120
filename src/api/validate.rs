//! The rules for every input field. Each validator takes the field's raw JSON
//! and answers the typed value or a 400 naming the field and the rule. The
//! limits are constants here, and the `*_schema` functions build each
//! field's OpenAPI schema from the same constants, so the document states
//! exactly what is enforced.

use serde_json::{json, Value};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use warp::http::{HeaderName, HeaderValue};

use super::ApiState;
use crate::dispatch::sender::RESERVED_HEADERS;
use crate::store::{EventType, OrderingPolicy};
use crate::web::ApiError;

pub use crate::net::URL_MAX;

/// Longest webhook name, in characters.
pub const NAME_MAX: usize = 100;
/// Longest webhook description, in characters.
pub const DESCRIPTION_MAX: usize = 1000;
/// Most event-type patterns one webhook subscribes to.
pub const EVENTS_MAX: usize = 100;
/// Most custom headers one webhook sends.
pub const HEADERS_MAX: usize = 20;
/// Longest custom header value, in bytes.
pub const HEADER_VALUE_MAX: usize = 4096;
/// `maxRetries`: the range accepted, inclusive.
pub const MAX_RETRIES: (i64, i64) = (0, 10);
/// `maxRetries` when a create leaves it out.
pub const DEFAULT_MAX_RETRIES: i32 = 3;
/// `retryDelay` in seconds: the range accepted, inclusive.
pub const RETRY_DELAY: (i64, i64) = (10, 3600);
/// `retryDelay` in seconds when a create leaves it out.
pub const DEFAULT_RETRY_DELAY: i32 = 60;
/// `rateLimit` (requests per second): the range accepted, inclusive.
pub const RATE_LIMIT: (i64, i64) = (1, 10_000);
/// `maxInFlight`: the range accepted, inclusive.
pub const MAX_IN_FLIGHT: (i64, i64) = (1, 10_000);
/// `retrySchedule`: how many entries, inclusive.
pub const RETRY_SCHEDULE_LEN: (usize, usize) = (1, 20);
/// `retrySchedule`: seconds of one entry, inclusive (up to 7 days).
pub const RETRY_SCHEDULE_SECS: (i64, i64) = (1, 604_800);
/// Longest rotation grace period: 7 days.
pub const GRACE_MAX: i64 = 7 * 86400;
/// Longest idempotency key of `POST /api/events`, in characters.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// Longest ordering key of `POST /api/events`, in bytes of UTF-8 (the
/// trigger `postbox.events_before_insert_order` refuses longer ones).
pub const ORDERING_KEY_MAX_BYTES: usize = 256;
/// Longest event type name accepted by `POST /api/events` and the admin
/// routes of the catalogue.
pub const EVENT_TYPE_MAX: usize = 200;
/// The catalogue's naming rule (the CHECK on `postbox.event_types.name`):
/// dot-separated lower-case words, at least two.
pub const EVENT_TYPE_PATTERN: &str = "^[a-z0-9_]+(\\.[a-z0-9_]+)+$";
/// How many deliveries `GET /api/webhooks/{id}` shows.
pub const RECENT_DELIVERIES: i64 = 10;
/// Highest `page` a list accepts.
pub const PAGE_MAX: i64 = 1_000_000;
/// Highest `limit` (page size) a list accepts.
pub const LIMIT_MAX: i64 = 100;
/// `limit` when a list request leaves it out.
pub const DEFAULT_LIMIT: i64 = 20;
/// A string without NUL (Postgres text and jsonb cannot hold U+0000), as a
/// JSON Schema pattern.
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// A field the request must carry.
pub fn required(field: &str, v: Option<Value>) -> Result<Value, ApiError> {
    match v {
        None | Some(Value::Null) => Err(ApiError::validation(field, "is required")),
        Some(v) => Ok(v),
    }
}

/// The characters Rust's `char::is_whitespace` (Unicode White_Space)
/// counts, as a regular-expression class body: what "blank" means below.
const WHITE_SPACE: &str =
    "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A string that is not blank (some character outside [`WHITE_SPACE`])
/// and holds no NUL, as a JSON Schema pattern (ECMA 262 syntax).
pub fn not_blank_pattern() -> String {
    format!("^[^\\u0000]*[^\\u0000{WHITE_SPACE}][^\\u0000]*$")
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
    without_nul(field, s)
}

/// `s` when it holds no NUL (Postgres text cannot store U+0000).
fn without_nul(field: &str, s: String) -> Result<String, ApiError> {
    if s.contains('\0') {
        return Err(ApiError::validation(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(s)
}

/// `orderingKey`: a string of 1 to [`ORDERING_KEY_MAX_BYTES`] bytes without
/// NUL, kept as sent (a blank key is a key: the SQL function accepts it).
pub fn ordering_key(v: Value) -> Result<String, ApiError> {
    let Value::String(s) = v else {
        return Err(ApiError::validation("orderingKey", "must be a string"));
    };
    if s.is_empty() {
        return Err(ApiError::validation("orderingKey", "must not be empty"));
    }
    if s.len() > ORDERING_KEY_MAX_BYTES {
        return Err(ApiError::validation(
            "orderingKey",
            format!("must be at most {ORDERING_KEY_MAX_BYTES} bytes as UTF-8"),
        ));
    }
    without_nul("orderingKey", s)
}

/// `orderingPolicy`: `"block"` or `"skip_failed"`.
pub fn ordering_policy(v: Value) -> Result<OrderingPolicy, ApiError> {
    v.as_str().and_then(OrderingPolicy::parse).ok_or_else(|| {
        ApiError::validation("orderingPolicy", "must be \"block\" or \"skip_failed\"")
    })
}

/// An event type name by [`EVENT_TYPE_PATTERN`], at most [`EVENT_TYPE_MAX`]
/// bytes.
pub fn event_type_name(field: &str, raw: &str) -> Result<String, ApiError> {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let words: Vec<&str> = raw.split('.').collect();
    if raw.len() > EVENT_TYPE_MAX || words.len() < 2 || !words.iter().all(|w| word(w)) {
        return Err(ApiError::validation(
            field,
            format!(
                "must be dot-separated words of a-z, 0-9 and _ (e.g. project.updated), at most {EVENT_TYPE_MAX} characters"
            ),
        ));
    }
    Ok(raw.to_string())
}

/// A catalogue description: a string of at most [`DESCRIPTION_MAX`]
/// characters without NUL; may be empty.
pub fn type_description(v: Value) -> Result<String, ApiError> {
    let Value::String(s) = v else {
        return Err(ApiError::validation("description", "must be a string"));
    };
    if s.chars().count() > DESCRIPTION_MAX {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    without_nul("description", s)
}

/// `name`: 1 to [`NAME_MAX`] characters, not blank.
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

/// An integer in `range`. As in JSON Schema, a number with no fractional
/// part is an integer whatever its spelling (`60`, `60.0`, `6e1`); the
/// decimal text is read exactly, never through a float.
pub fn int(field: &str, v: Value, (min, max): (i64, i64)) -> Result<i32, ApiError> {
    let rule = format!("must be an integer from {min} to {max}");
    let n = match &v {
        Value::Number(n) => exact_integer(&n.to_string()),
        _ => None,
    }
    .ok_or_else(|| ApiError::validation(field, rule.clone()))?;
    if !(min..=max).contains(&n) {
        return Err(ApiError::validation(field, rule));
    }
    i32::try_from(n).map_err(|_| ApiError::validation(field, rule))
}

/// The value of a JSON number's text when it is an integer that fits an
/// `i64` (`-12`, `12.000`, `1.2e1`, `120e-1`), else `None`.
pub fn exact_integer(text: &str) -> Option<i64> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int}{frac}");
    let mut point = i64::try_from(int.len()).ok()? + exp;
    // Leading zeros say nothing; trailing ones after the point neither.
    let lead = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..lead);
    point -= i64::try_from(lead).ok()?;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if point < i64::try_from(digits.len()).ok()? || point > 19 {
        return None;
    }
    let zeros = usize::try_from(point).ok()? - digits.len();
    let whole: i128 = format!("{digits}{}", "0".repeat(zeros)).parse().ok()?;
    i64::try_from(if negative { -whole } else { whole }).ok()
}

/// `null` (no limit) or an integer in `range`.
pub fn optional_int(field: &str, v: Value, range: (i64, i64)) -> Result<Option<i32>, ApiError> {
    match v {
        Value::Null => Ok(None),
        v => int(field, v, range).map(Some),
    }
}

/// `retrySchedule`: `null` (clear) or 1-20 integers of 1-604800 seconds.
pub fn retry_schedule(v: Value) -> Result<Option<Vec<i32>>, ApiError> {
    let (min_len, max_len) = RETRY_SCHEDULE_LEN;
    let (lo, hi) = RETRY_SCHEDULE_SECS;
    let rule = format!(
        "must be null or an array of {min_len} to {max_len} integers from {lo} to {hi} (seconds before each retry)"
    );
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(ApiError::validation("retrySchedule", rule)),
    };
    if !(min_len..=max_len).contains(&items.len()) {
        return Err(ApiError::validation("retrySchedule", rule));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, x)| int(&format!("retrySchedule[{i}]"), x, RETRY_SCHEDULE_SECS))
        .collect::<Result<Vec<i32>, ApiError>>()
        .map(Some)
}

/// An RFC 3339 timestamp (`2026-11-28T19:47:22Z`, any offset) between
/// the years 1 and 9999.
pub fn timestamp(field: &str, v: Value) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let rule = "must be an RFC 3339 timestamp such as 2026-11-28T19:47:22Z";
    let Value::String(s) = v else {
        return Err(ApiError::validation(field, rule));
    };
    chrono::DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| ApiError::validation(field, rule))
}

/// A JSON boolean.
pub fn boolean(field: &str, v: Value) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::validation(field, "must be true or false"))
}

/// An http(s) URL by the one URL rule (`net::parse_target_url`) that the
/// SSRF guard lets through.
pub async fn url(state: &ApiState, v: Value) -> Result<String, ApiError> {
    let Value::String(raw) = v else {
        return Err(ApiError::validation("url", "must be a string"));
    };
    let parsed = crate::net::parse_target_url(&raw, state.require_https)
        .map_err(|rule| ApiError::validation("url", rule))?;
    crate::net::validate_target(&parsed, state.allow_private_targets)
        .await
        .map_err(|reason| ApiError::validation("url", reason))?;
    Ok(parsed.to_string())
}

/// Event subscriptions: catalogue types, `group.*` for a catalogue group, or
/// `*`. Duplicates are dropped, order kept.
pub fn events(v: Value, catalogue: &[EventType]) -> Result<Vec<String>, ApiError> {
    event_patterns("events", v, catalogue)
}

/// As [`events`], for the field `field` (e.g. `eventTypes` of a recover).
pub fn event_patterns(
    field: &str,
    v: Value,
    catalogue: &[EventType],
) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(ApiError::validation(
            field,
            "must be an array of event types",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::validation(
            field,
            "must name at least one event type",
        ));
    }
    if items.len() > EVENTS_MAX {
        return Err(ApiError::validation(
            field,
            format!("must have at most {EVENTS_MAX} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(ApiError::validation(field, "every entry must be a string"));
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
                field,
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

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([t, Type::Null]))
}

fn integer((min, max): (i64, i64), default: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
        .default(Some(json!(default)))
}

/// `name`: what [`name`] accepts.
pub fn name_schema() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(not_blank_pattern()))
}

/// `description`: what [`description`] accepts (null or "" clears it).
pub fn description_schema() -> ObjectBuilder {
    nullable(Type::String)
        .max_length(Some(DESCRIPTION_MAX))
        .pattern(Some(format!("^$|{}", not_blank_pattern())))
}

/// `url`: what [`url`] accepts, short of the address checks.
pub fn url_schema() -> ObjectBuilder {
    string()
        .max_length(Some(URL_MAX))
        .pattern(Some(crate::net::URL_PATTERN))
        .description(Some(
            "an absolute http(s) URL as a URL parser reads it (docs/WEBHOOKS.md, \"Endpoint URLs\"); \
             unless POSTBOX_ALLOW_PRIVATE_TARGETS, its host must also resolve to public addresses only",
        ))
}

/// `events`: what [`events`] accepts; the served document adds the live
/// catalogue as the items' enum.
pub fn events_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(string().description(Some("a catalogue type, group.* or *")))
        .min_items(Some(1))
        .max_items(Some(EVENTS_MAX))
}

/// `headers`: what [`headers`] accepts.
pub fn headers_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(HEADERS_MAX))
        .property_names(Some(string().pattern(Some(header_name_pattern()))))
        .additional_properties(Some(
            string()
                .max_length(Some(HEADER_VALUE_MAX))
                .pattern(Some("^[\\t\\x20-\\x7e]*$")),
        ))
        .description(Some(
            "custom headers; not content-type, user-agent, webhook-*, x-webhook-* or other reserved names",
        ))
}

/// A header name (an RFC 9110 token) that is none of `RESERVED_HEADERS`,
/// in any letter case, as a pattern; the lookahead spells each reserved
/// name with both cases of every letter.
pub fn header_name_pattern() -> String {
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else {
                    format!("\\{c}")
                }
            })
            .collect()
    };
    let reserved: Vec<String> = RESERVED_HEADERS.iter().map(|n| any_case(n)).collect();
    format!(
        "^(?!(?:{})$)[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        reserved.join("|")
    )
}

/// `maxRetries`.
pub fn max_retries_schema() -> ObjectBuilder {
    integer(MAX_RETRIES, DEFAULT_MAX_RETRIES.into())
}

/// `retryDelay`.
pub fn retry_delay_schema() -> ObjectBuilder {
    integer(RETRY_DELAY, DEFAULT_RETRY_DELAY.into())
        .description(Some("seconds before the first retry; doubles each retry"))
}

/// `active`.
pub fn active_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean)
}

/// `paused`.
pub fn paused_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .description(Some(
            "true holds the webhook's deliveries (not sent, retry budget kept) until false",
        ))
}

fn optional_integer((min, max): (i64, i64), description: &'static str) -> ObjectBuilder {
    nullable(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
}

/// `rateLimit`.
pub fn rate_limit_schema() -> ObjectBuilder {
    optional_integer(
        RATE_LIMIT,
        "requests per second to this webhook across all dispatchers; null: no limit",
    )
}

/// `maxInFlight`.
pub fn max_in_flight_schema() -> ObjectBuilder {
    optional_integer(
        MAX_IN_FLIGHT,
        "requests in flight to this webhook across all dispatchers; null: the server's per-endpoint default",
    )
}

/// `retrySchedule`: what [`retry_schedule`] accepts.
pub fn retry_schedule_schema() -> ArrayBuilder {
    let (lo, hi) = RETRY_SCHEDULE_SECS;
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(lo))
                .maximum(Some(hi)),
        )
        .min_items(Some(RETRY_SCHEDULE_LEN.0))
        .max_items(Some(RETRY_SCHEDULE_LEN.1))
        .description(Some(
            "seconds to wait before each retry; when set it replaces maxRetries and retryDelay; null clears it",
        ))
}

/// A timestamp field (`since`).
pub fn timestamp_schema() -> ObjectBuilder {
    string()
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
        .description(Some("an RFC 3339 timestamp"))
}

/// An optional timestamp field (`until`, `backfillSince`): null as absent.
pub fn optional_timestamp_schema() -> ObjectBuilder {
    timestamp_schema().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// `eventTypes` of a recover or replay: what [`event_patterns`] accepts, or
/// null for every type.
pub fn event_types_filter_schema() -> ArrayBuilder {
    events_schema()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some("types, group.* or *; absent or null: every type"))
}

/// `graceSeconds` of a rotation.
pub fn grace_schema() -> ObjectBuilder {
    integer((0, GRACE_MAX), 0)
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .description(Some(
            "seconds the old secret keeps signing; absent or null: 0",
        ))
}

/// `type` of a published event; the served document adds the catalogue.
pub fn event_type_schema() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(EVENT_TYPE_MAX))
        .pattern(Some(not_blank_pattern()))
        .description(Some("a catalogue type"))
}

/// `data` of a published event: an object of JSON values in which no key
/// and no string holds NUL (Postgres `jsonb` cannot store U+0000). Numbers
/// keep every digit; one beyond Postgres's numeric range (about 1e131072)
/// is refused.
pub fn payload_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string().pattern(Some(NO_NUL))))
        .additional_properties(Some(utoipa::openapi::Ref::from_schema_name("JsonValue")))
        .description(Some(
            "the payload, at most 1 MiB as JSON text; no NUL (U+0000) in any key or string; numbers are kept with every digit",
        ))
}

/// `JsonValue`: any JSON value without NUL in a key or a string (what
/// Postgres `jsonb` stores), recursively.
pub fn json_value_schema() -> serde_json::Value {
    json!({
        "description": "any JSON value without NUL (U+0000) in a key or a string",
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": NO_NUL},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"type": "object", "propertyNames": {"type": "string", "pattern": NO_NUL},
             "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}}
        ]
    })
}

/// `idempotencyKey` of a published event.
pub fn idempotency_key_schema() -> ObjectBuilder {
    nullable(Type::String)
        .min_length(Some(1))
        .max_length(Some(IDEMPOTENCY_KEY_MAX))
        .pattern(Some(not_blank_pattern()))
}

/// `orderingPolicy` of a webhook.
pub fn ordering_policy_schema() -> ObjectBuilder {
    string()
        .enum_values(Some(OrderingPolicy::ALL.map(OrderingPolicy::as_str)))
        .default(Some(json!(OrderingPolicy::default().as_str())))
        .description(Some(
            "ordered delivery: block (a failing delivery holds its key's later ones until it is delivered, dead-lettered or cancelled) or skip_failed (a failed attempt lets the next go; the failed one retries out of line)",
        ))
}

/// `orderingKey` of a published event. JSON Schema counts characters, the
/// server bytes: the description says so.
pub fn ordering_key_schema() -> ObjectBuilder {
    nullable(Type::String)
        .min_length(Some(1))
        .max_length(Some(ORDERING_KEY_MAX_BYTES))
        .pattern(Some(NO_NUL))
        .description(Some(
            "deliveries of one key go one at a time per webhook, in commit order; 1 to 256 bytes as UTF-8, no NUL; absent or null: unordered",
        ))
}

/// `supersede` of a published event.
pub fn supersede_schema() -> ObjectBuilder {
    nullable(Type::Boolean).description(Some(
        "true (needs orderingKey) cancels the key's not-yet-sent deliveries of the same type; absent or null: false",
    ))
}

/// `PublishRequest`'s `if`: `supersede` is true ...
pub fn supersede_condition() -> serde_json::Value {
    json!({"properties": {"supersede": {"const": true}}, "required": ["supersede"]})
}

/// ... `then`: `orderingKey` is a string (not absent, not null).
pub fn supersede_needs_key() -> serde_json::Value {
    json!({"properties": {"orderingKey": {"type": "string"}}, "required": ["orderingKey"]})
}

/// An event type name (path `{type}`, body `type` of the admin routes).
pub fn event_type_name_schema() -> ObjectBuilder {
    string()
        .max_length(Some(EVENT_TYPE_MAX))
        .pattern(Some(EVENT_TYPE_PATTERN))
}

/// `description` of a catalogue entry.
pub fn type_description_schema() -> ObjectBuilder {
    string()
        .max_length(Some(DESCRIPTION_MAX))
        .pattern(Some(NO_NUL))
}

/// `recentDeliveries` of a webhook's detail.
pub fn recent_deliveries_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("Delivery"))
        .max_items(Some(RECENT_DELIVERIES as usize))
}
/// `ownerId` of a portal link: a token's `sub` rule.
pub fn portal_owner_schema() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(crate::api::auth::MAX_SUB_LEN))
        .pattern(Some(NO_NUL))
        .description(Some("the owner whose portal the link opens"))
}

/// `ttlSeconds` of a portal link.
pub fn portal_ttl_schema() -> ObjectBuilder {
    integer(
        crate::portal::LINK_TTL_SECONDS,
        crate::portal::DEFAULT_LINK_TTL_SECONDS,
    )
    .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
    .description(Some(
        "seconds the link can be opened (once); absent or null: 900",
    ))
}

/// `admin` of a portal link.
pub fn portal_admin_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null]))
        .default(Some(json!(false)))
        .description(Some("open the operator view too; absent or null: false"))
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
    fn retry_schedules_are_1_to_20_entries_of_1_to_604800_seconds() {
        assert_eq!(retry_schedule(json!(null)).unwrap(), None);
        assert_eq!(
            retry_schedule(json!([5, 300, 604800])).unwrap(),
            Some(vec![5, 300, 604800])
        );
        for bad in [
            json!([]),
            json!([0]),
            json!([604801]),
            json!([1.5]),
            json!(["5"]),
            json!([null]),
            json!(5),
            json!(vec![1; 21]),
        ] {
            assert!(retry_schedule(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_any_offset() {
        let t = timestamp("since", json!("2026-11-28T20:47:22+01:00")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T19:47:22+00:00");
        for bad in [
            json!("2026-11-28"),
            json!("yesterday"),
            json!(1764359242),
            json!(null),
            json!("2026-11-28T19:47:22"),
        ] {
            assert!(timestamp("since", bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ints_are_range_checked() {
        assert_eq!(int("maxRetries", json!(10), MAX_RETRIES).unwrap(), 10);
        for bad in [json!(11), json!(-1), json!(1.5), json!("3"), json!(null)] {
            assert!(int("maxRetries", bad, MAX_RETRIES).is_err());
        }
    }

    #[test]
    fn ordering_keys_are_1_to_256_bytes_without_nul_and_policies_are_two_words() {
        assert_eq!(ordering_key(json!(" ")).unwrap(), " ");
        assert!(ordering_key(json!("k".repeat(256))).is_ok());
        assert!(ordering_key(json!("é".repeat(128))).is_ok());
        for bad in [
            json!(""),
            json!("k".repeat(257)),
            json!("é".repeat(129)),
            json!("a\u{0}b"),
            json!(1),
            json!(null),
        ] {
            let e = ordering_key(bad.clone()).unwrap_err();
            assert!(
                e.message.starts_with("orderingKey:"),
                "{bad}: {}",
                e.message
            );
        }
        assert_eq!(
            ordering_policy(json!("block")).unwrap(),
            OrderingPolicy::Block
        );
        assert_eq!(
            ordering_policy(json!("skip_failed")).unwrap(),
            OrderingPolicy::SkipFailed
        );
        for bad in [json!("Block"), json!(""), json!(null), json!(true)] {
            let e = ordering_policy(bad.clone()).unwrap_err();
            assert!(
                e.message.starts_with("orderingPolicy:"),
                "{bad}: {}",
                e.message
            );
        }
    }
}
