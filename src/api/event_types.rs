//! The admin routes of the event catalogue: add (or reopen), describe and
//! retire a type. Retiring keeps the row: publishing the type is refused
//! from then on (by the database, whatever the path), while events already
//! stored and their deliveries stay and are delivered as before. The
//! catalogue (`GET /api/webhooks/events`) lists open types only, so a
//! retired type can no longer be subscribed to; webhooks that name it keep
//! their subscription.

use super::reply::{Created, Success};
use super::request::{AnyQuery, EventTypeName, Input, Json, NoBody};
use super::validate::{self as v, required};
use super::wire::{EventType, EventTypeCreate, EventTypeUpdate};
use super::ApiState;
use crate::web::ApiError;
use warp::http::StatusCode;

/// The type the test route publishes: it cannot be retired.
const TEST_TYPE: &str = "webhook.test";

/// `POST /api/webhooks/events`
pub async fn create(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<EventTypeCreate>>,
) -> Result<Created<EventType>, ApiError> {
    let Json(b) = req.body;
    let name = match required("type", b.name)? {
        serde_json::Value::String(s) => v::event_type_name("type", &s)?,
        _ => return Err(ApiError::validation("type", "must be a string")),
    };
    let description = match b.description {
        None => String::new(),
        Some(d) => v::type_description(d)?,
    };
    let t = state
        .store
        .event_type_insert(&name, &description)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("event type {name:?} exists; change its description with PUT"),
            )
        })?;
    Ok(Created::new(t.into()))
}

/// `PUT /api/webhooks/events/{type}`
pub async fn update(
    state: &ApiState,
    req: Input<EventTypeName, AnyQuery, Json<EventTypeUpdate>>,
) -> Result<Success<EventType>, ApiError> {
    let Json(b) = req.body;
    let description = v::type_description(required("description", b.description)?)?;
    let t = state
        .store
        .event_type_update(&req.path.0, &description)
        .await?
        .ok_or_else(|| ApiError::not_found("event type"))?;
    Ok(Success::new(t.into()))
}

/// `DELETE /api/webhooks/events/{type}`
pub async fn retire(
    state: &ApiState,
    req: Input<EventTypeName, AnyQuery, NoBody>,
) -> Result<Success<EventType>, ApiError> {
    if req.path.0 == TEST_TYPE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "webhook.test is published by POST /api/webhooks/{id}/test and cannot be retired",
        ));
    }
    let t = state
        .store
        .event_type_retire(&req.path.0, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("event type"))?;
    Ok(Success::new(t.into()))
}
