//! Queue administration (admin tokens only): counts, pause and resume for
//! every dispatcher at once, and the requeue of failed deliveries.

use super::deliveries::wake;
use super::reply::Success;
use super::request::{parse_uuid, AnyQuery, Input, Json, NoBody, NoQuery};
use super::wire::{Count, Empty, PauseState, QueueStats, RetryFailedRequest};
use super::ApiState;
use crate::web::ApiError;

/// `GET /api/webhooks/queue/stats`
pub async fn stats(
    state: &ApiState,
    _: Input<(), NoQuery, NoBody>,
) -> Result<Success<QueueStats>, ApiError> {
    Ok(Success::new(state.store.queue_stats().await?.into()))
}

/// `POST /api/webhooks/queue/pause`
pub async fn pause(
    state: &ApiState,
    _: Input<(), AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<PauseState>, ApiError> {
    state.store.queue_pause().await?;
    Ok(Success::new(PauseState { is_paused: true }))
}

/// `POST /api/webhooks/queue/resume`
pub async fn resume(
    state: &ApiState,
    _: Input<(), AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<PauseState>, ApiError> {
    state.store.queue_resume().await?;
    wake(state).await;
    Ok(Success::new(PauseState { is_paused: false }))
}

/// `POST /api/webhooks/queue/retry-failed`
pub async fn retry_failed(
    state: &ApiState,
    req: Input<(), AnyQuery, Option<Json<RetryFailedRequest>>>,
) -> Result<Success<Count>, ApiError> {
    let b = req.body.map(|j| j.0).unwrap_or_default();
    let webhook_id = match b.webhook_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(parse_uuid("webhookId", &s)?),
        Some(_) => return Err(ApiError::validation("webhookId", "must be a UUID")),
    };
    let count = state.store.delivery_retry_failed_many(webhook_id).await?;
    if count > 0 {
        wake(state).await;
    }
    Ok(Success::new(Count { count }))
}
