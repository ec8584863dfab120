//! Queue administration (admin tokens only): counts, pause and resume for
//! every dispatcher at once, and the requeue of failed deliveries.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::deliveries::{wake, NoFields};
use super::envelope::{ok, ApiError};
use super::request::{parse_uuid, present, Ctx, Field};
use super::ApiState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetryFailedBody {
    #[serde(default, deserialize_with = "present")]
    webhook_id: Field,
}

pub async fn stats(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    ctx.query_pairs(&[])?;
    let s = state.store.queue_stats().await?;
    Ok(ok(StatusCode::OK, &s))
}

pub async fn pause(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let _: Option<NoFields> = ctx.json()?;
    state.store.queue_pause().await?;
    Ok(ok(StatusCode::OK, &json!({"isPaused": true})))
}

pub async fn resume(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let _: Option<NoFields> = ctx.json()?;
    state.store.queue_resume().await?;
    wake(state).await;
    Ok(ok(StatusCode::OK, &json!({"isPaused": false})))
}

pub async fn retry_failed(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let b: RetryFailedBody = ctx.json()?.unwrap_or_default();
    let webhook_id = match b.webhook_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(parse_uuid("webhookId", &s)?),
        Some(_) => return Err(ApiError::validation("webhookId", "must be a UUID")),
    };
    let count = state.store.delivery_retry_failed_many(webhook_id).await?;
    if count > 0 {
        wake(state).await;
    }
    Ok(ok(StatusCode::OK, &json!({"count": count})))
}
