//! `POST /api/events`: publish over HTTP for the caller as owner, through the
//! same INSERT and triggers as the SQL function producers call; the answer
//! says whether the idempotency key was already used. `orderingKey` and
//! `supersede` are those of `postbox.publish()`, checked here first so that
//! a refusal names the field.

use serde_json::Value;

use super::reply::Accepted;
use super::request::{AnyQuery, Input, Json};
use super::validate::{self as v, required};
use super::wire::{PublishRequest, PublishResult};
use super::ApiState;
use crate::store::PublishOptions;
use crate::web::ApiError;

/// `POST /api/events`
pub async fn publish(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<PublishRequest>>,
) -> Result<Accepted<PublishResult>, ApiError> {
    let Json(b) = req.body;
    let event_type = v::text("type", required("type", b.event_type)?, v::EVENT_TYPE_MAX)?;
    let data = required("data", b.data)?;
    if !data.is_object() {
        return Err(ApiError::validation("data", "must be a JSON object"));
    }
    let key = match b.idempotency_key {
        None | Some(Value::Null) => None,
        Some(k) => Some(v::text("idempotencyKey", k, v::IDEMPOTENCY_KEY_MAX)?),
    };
    let ordering_key = match b.ordering_key {
        None | Some(Value::Null) => None,
        Some(k) => Some(v::ordering_key(k)?),
    };
    let supersede = match b.supersede {
        None | Some(Value::Null) => false,
        Some(x) => v::boolean("supersede", x)?,
    };
    if supersede && ordering_key.is_none() {
        return Err(ApiError::validation(
            "supersede",
            "needs orderingKey: it cancels that key's earlier deliveries",
        ));
    }
    // The database checks too; asking first gives the field name.
    let catalogue = state.store.event_type_list().await?;
    if !catalogue.iter().any(|t| t.name == event_type) {
        return Err(ApiError::validation(
            "type",
            format!("unknown event type {event_type:?}: see GET /api/webhooks/events"),
        ));
    }
    let p = state
        .store
        .event_publish(
            &event_type,
            &data,
            &req.caller.owner,
            &PublishOptions {
                idempotency_key: key.as_deref(),
                ordering_key: ordering_key.as_deref(),
                supersede,
            },
        )
        .await?;
    Ok(Accepted::new(PublishResult {
        id: p.id,
        duplicate: p.duplicate,
        payload_matches: p.same_content,
    }))
}
