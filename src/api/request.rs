//! What a handler gets from a request: the caller, the path parameters, the
//! query and the body, read with a hard size limit and parsed into a struct
//! that refuses unknown fields. Each field arrives as raw JSON so that the
//! validators can name the field and the rule it breaks.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;
use warp::http::{HeaderMap, StatusCode};

use super::auth::Caller;
use super::envelope::ApiError;
use super::errors;

/// Largest request body accepted (1 MiB); more is a 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// One request, ready for a handler.
pub struct Ctx {
    pub caller: Caller,
    /// Path parameters in template order (`{id}`, `{deliveryId}`).
    pub params: Vec<String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Ctx {
    /// Path parameter `i` as a UUID; anything else is a 400 naming it.
    pub fn uuid(&self, i: usize, name: &str) -> Result<Uuid, ApiError> {
        let raw = self.params.get(i).map(String::as_str).unwrap_or("");
        parse_uuid(name, raw)
    }

    /// The JSON body as `T`. An empty body is `None` (callers decide whether
    /// that is allowed); a non-empty one must be a JSON object sent as
    /// `application/json`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !is_json(&self.headers) {
            return Err(errors::unsupported_media_type());
        }
        let value: serde_json::Value = serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::validation("body", "must be a JSON object"));
        }
        serde_json::from_value(value).map(Some).map_err(|e| {
            let msg = e.to_string();
            // serde names unknown fields as: unknown field `x`, expected ...
            let field = msg.split('`').nth(1).unwrap_or("body").to_string();
            ApiError::validation(&field, msg)
        })
    }

    /// The JSON body as `T`, required.
    pub fn json_required<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json()?
            .ok_or_else(|| ApiError::validation("body", "a JSON object is required"))
    }

    /// Query parameters; any name outside `allowed` is a 400.
    pub fn query_pairs(&self, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
        let Some(q) = &self.query else {
            return Ok(vec![]);
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                let hint = if allowed.is_empty() {
                    "this route takes no query parameters".to_string()
                } else {
                    format!("unknown query parameter; allowed: {}", allowed.join(", "))
                };
                return Err(ApiError::validation(k, hint));
            }
        }
        Ok(pairs)
    }
}

pub fn parse_uuid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    // Only the canonical hyphenated form: what the API itself prints.
    if raw.len() != 36 {
        return Err(ApiError::validation(name, "must be a UUID"));
    }
    Uuid::parse_str(raw).map_err(|_| ApiError::validation(name, "must be a UUID"))
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a body of at most `MAX_BODY` bytes: a larger Content-Length is
/// refused before reading, and a chunked body is cut off as soon as it
/// passes the limit.
pub async fn read_body<S, B>(headers: &HeaderMap, body: S) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if let Some(len) = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if len > MAX_BODY as u64 {
            return Err(errors::payload_too_large());
        }
    }
    let mut out = BytesMut::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "cannot read the request body",
            )
        })?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(errors::payload_too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// A body field as raw JSON: absent is `None`, present (even `null`) is `Some`.
pub type Field = Option<serde_json::Value>;

/// `deserialize_with` for `Field`: keeps an explicit `null` as `Some(Null)`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}
