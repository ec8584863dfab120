//! `POST /api/events`: publish over HTTP for the caller as owner, through the
//! same SQL function producers call.

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::envelope::{ok, ApiError};
use super::request::{present, Ctx, Field};
use super::validate::{self as v, required};
use super::ApiState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PublishBody {
    #[serde(default, deserialize_with = "present", rename = "type")]
    event_type: Field,
    #[serde(default, deserialize_with = "present")]
    data: Field,
    #[serde(default, deserialize_with = "present")]
    idempotency_key: Field,
}

pub async fn publish(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let b: PublishBody = ctx.json_required()?;
    let event_type = v::text("type", required("type", b.event_type)?, 200)?;
    let data = required("data", b.data)?;
    if !data.is_object() {
        return Err(ApiError::validation("data", "must be a JSON object"));
    }
    let key = match b.idempotency_key {
        None | Some(Value::Null) => None,
        Some(k) => Some(v::text("idempotencyKey", k, v::IDEMPOTENCY_KEY_MAX)?),
    };
    // The database checks too; asking first gives the field name.
    let catalogue = state.store.event_type_list().await?;
    if !catalogue.iter().any(|t| t.name == event_type) {
        return Err(ApiError::validation(
            "type",
            format!("unknown event type {event_type:?}: see GET /api/webhooks/events"),
        ));
    }
    let id = state
        .store
        .event_publish(&event_type, &data, &ctx.caller.owner, key.as_deref())
        .await?;
    Ok(ok(StatusCode::ACCEPTED, &json!({"id": id})))
}
