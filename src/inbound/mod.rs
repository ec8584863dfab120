//! Incoming webhooks: Stripe and Clerk (Svix) signature checks, and the
//! inbox writes. No JWT on these routes: the signature is the credential.
//!
//! Invariants: the signature is checked against the raw body bytes as
//! received (never a re-serialization), before the body is parsed; nothing is
//! stored unless it verified; `(source, external_id)` is stored at most once.

pub mod clerk;
pub mod stripe;

use bytes::Bytes;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::clock::SharedClock;
use crate::signing::SigningKey;
use crate::store::Store;
use crate::web::body::{read_body, BodyError, MAX_BODY};
use crate::web::ApiError;

/// The NOTIFY channel raised (at commit) for every new inbox row; the payload is the source.
pub const INBOX_CHANNEL: &str = "postbox_inbox";

/// Largest accepted body (the one cap of `web::body`). Stripe and Svix
/// events are far smaller.
pub const MAX_BODY_BYTES: usize = MAX_BODY;

/// What the incoming routes need: the store, the clock (signature age) and
/// each provider's secret (`None`: that route answers 503).
#[derive(Clone)]
pub struct InboundState {
    pub store: Store,
    pub clock: SharedClock,
    pub stripe_webhook_secret: Option<String>,
    pub clerk_webhook_secret: Option<String>,
}

/// Longest accepted external id: it is a key of a btree index, and both
/// providers use short ids (`evt_...`, `msg_...`).
const MAX_EXTERNAL_ID: usize = 255;

/// POST /api/webhooks/stripe and POST /api/webhooks/clerk.
pub fn routes(
    state: InboundState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let stripe = warp::path!("api" / "webhooks" / "stripe")
        .and(warp::post())
        .and(configured(
            state.stripe_webhook_secret.clone(),
            "STRIPE_WEBHOOK_SECRET",
        ))
        .and(with_state(state.clone()))
        .and(warp::header::headers_cloned())
        .and(raw_body())
        .and_then(stripe_handler);
    let clerk = warp::path!("api" / "webhooks" / "clerk")
        .and(warp::post())
        .and(configured(
            state.clerk_webhook_secret.clone(),
            "CLERK_WEBHOOK_SECRET",
        ))
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .and(raw_body())
        .and_then(clerk_handler);
    stripe.or(clerk).unify()
}

fn with_state(
    state: InboundState,
) -> impl Filter<Extract = (InboundState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Extracts the route's secret, or answers 503 naming the variable to set
/// (checked before the body is read).
fn configured(
    secret: Option<String>,
    variable: &'static str,
) -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::any().and_then(move || {
        let secret = secret.clone().filter(|s| !s.is_empty());
        async move {
            secret.ok_or_else(|| {
                warp::reject::custom(ApiError::unavailable(format!(
                    "this route is not configured: set {variable} to enable it"
                )))
            })
        }
    })
}

/// The raw body, at most `MAX_BODY_BYTES` (`web::body`): 413 when larger,
/// declared or streamed.
fn raw_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .and_then(|headers: HeaderMap, body| async move {
            read_body(&headers, body).await.map_err(|e| {
                warp::reject::custom(match e {
                    BodyError::TooLarge => ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        format!("body exceeds {MAX_BODY_BYTES} bytes"),
                    ),
                    BodyError::Unreadable(e) => {
                        ApiError::validation("body", format!("cannot read: {e}"))
                    }
                })
            })
        })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bad_signature(e: impl std::fmt::Display) -> Rejection {
    warp::reject::custom(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "INVALID_SIGNATURE",
        format!("signature verification failed: {e}"),
    ))
}

fn bad_payload(message: impl Into<String>) -> Rejection {
    warp::reject::custom(ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_PAYLOAD",
        message,
    ))
}

/// 200 `{"success": true, "received": true, "data": {"received": true, "duplicate": bool}}`:
/// the envelope of every API answer, with `received: true` at the top level
/// too (what docs/INBOX.md promises the providers).
fn received(duplicate: bool) -> Response {
    let body = serde_json::json!({
        "success": true,
        "received": true,
        "data": {"received": true, "duplicate": duplicate},
    });
    warp::reply::json(&body).into_response()
}

async fn store(
    state: &InboundState,
    source: &'static str,
    external_id: &str,
    event_type: &str,
    payload_json: &str,
) -> Result<Response, Rejection> {
    if external_id.len() > MAX_EXTERNAL_ID {
        return Err(bad_payload(format!(
            "event id is longer than {MAX_EXTERNAL_ID} bytes"
        )));
    }
    let inserted = state
        .store
        .inbox_insert(
            source,
            external_id,
            event_type,
            payload_json,
            state.clock.now(),
        )
        .await
        .map_err(|e| match e.sql_state() {
            // jsonb cannot hold \u0000 (untranslatable character): the
            // sender must be told, or it retries a 500 forever.
            Some("22P05") | Some("22P02") => bad_payload(format!(
                "payload cannot be stored as jsonb: {}",
                e.db_message().unwrap_or("invalid JSON text")
            )),
            _ => warp::reject::custom(ApiError::internal(&e)),
        })?;
    metrics::counter!(
        "postbox_inbox_received_total",
        "source" => source,
        "outcome" => if inserted { "stored" } else { "duplicate" }
    )
    .increment(1);
    Ok(received(!inserted))
}

async fn stripe_handler(
    secret: String,
    state: InboundState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let now = state.clock.now().timestamp();
    stripe::verify(
        &secret,
        header(&headers, "stripe-signature"),
        &body,
        now,
        stripe::Tolerance::ROUTE,
    )
    .map_err(bad_signature)?;
    let event = stripe::parse_event(&body).map_err(|e| bad_payload(e.to_string()))?;
    // parse_event succeeded, so the body is valid UTF-8 JSON.
    let text = std::str::from_utf8(&body).map_err(|e| bad_payload(e.to_string()))?;
    store(&state, "stripe", &event.id, &event.event_type, text).await
}

async fn clerk_handler(
    secret: String,
    state: InboundState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let key = SigningKey::from_secret(&secret).map_err(|e| {
        // The secret itself is never echoed.
        warp::reject::custom(ApiError::unavailable(format!(
            "CLERK_WEBHOOK_SECRET is not usable ({e}); set it to the whsec_ secret Clerk shows"
        )))
    })?;
    let svix = clerk::SvixHeaders {
        id: header(&headers, "svix-id"),
        timestamp: header(&headers, "svix-timestamp"),
        signature: header(&headers, "svix-signature"),
    };
    let now = state.clock.now().timestamp();
    clerk::verify(&key, svix, &body, now).map_err(bad_signature)?;
    let id = svix.id.unwrap_or_default();
    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| bad_payload(format!("body is not JSON: {e}")))?;
    let event_type = payload
        .as_object()
        .ok_or_else(|| bad_payload("body must be a JSON object"))?
        .get("type")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_payload("body lacks a non-empty string field \"type\""))?
        .to_string();
    let text = std::str::from_utf8(&body).map_err(|e| bad_payload(e.to_string()))?;
    store(&state, "clerk", id, &event_type, text).await
}
