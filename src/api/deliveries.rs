//! Delivery handlers: history, retry of one delivery, the test send, and the
//! per-webhook statistics.
//!
//! The test send is a real delivery: one SQL statement records a
//! `webhook.test` event (already fanned out) and its delivery to this webhook
//! only, claimed as attempt 1 under the dispatcher's lease; the request goes
//! through the dispatcher's `Sender` and the outcome through `retry::complete`
//! and `delivery_complete_many`, so signing, body and audit trail are the
//! dispatcher's own. A failed test is final (recorded `failed`, not retried):
//! it is a probe, and the caller sees its outcome at once. It works on an
//! inactive webhook too: it is an explicit request.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;

use super::envelope::{list as list_reply, ok, ApiError, Pagination};
use super::request::Ctx;
use super::validate as v;
use super::ApiState;
use crate::dispatch::retry;
use crate::store::RetryOutcome;

/// A body that must be empty or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TestResult {
    delivery_id: Uuid,
    event_id: Uuid,
    success: bool,
    status_code: Option<u16>,
    duration_ms: i32,
    error: Option<String>,
}

async fn owned_webhook(state: &ApiState, id: Uuid, owner: &str) -> Result<(), ApiError> {
    state
        .store
        .webhook_get(id, owner)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("webhook"))
}

pub async fn list(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    let page = v::page(&ctx, true)?;
    let owner = &ctx.caller.owner;
    owned_webhook(state, id, owner).await?;
    let (rows, total) = state
        .store
        .delivery_list_by_webhook(id, owner, page.status, page.limit, page.offset())
        .await?;
    Ok(list_reply(
        &rows,
        Pagination::new(page.page, page.limit, total),
    ))
}

pub async fn retry(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    let delivery_id = ctx.uuid(1, "deliveryId")?;
    let _: Option<NoFields> = ctx.json()?;
    let owner = &ctx.caller.owner;
    match state.store.delivery_retry(delivery_id, id, owner).await? {
        RetryOutcome::NotFound => return Err(ApiError::not_found("delivery")),
        RetryOutcome::InFlight => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "the delivery is being sent right now; retry once it has finished",
            ))
        }
        RetryOutcome::Requeued => {}
    }
    wake(state).await;
    let d = state
        .store
        .delivery_get(delivery_id, id, owner)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(ok(StatusCode::OK, &d))
}

pub async fn test_send(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    let _: Option<NoFields> = ctx.json()?;
    let now = state.clock.now();
    let payload = json!({
        "webhookId": id,
        "message": "This is a test event sent by Postbox on request.",
        "sentAt": now,
    });
    let claimed = state
        .store
        .delivery_test_create(id, &ctx.caller.owner, &payload, now, state.test_lease)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    // Send and record in a task of its own: a client that hangs up mid-request
    // must not leave the row `sending` for the lease rescue to retry.
    let (sender, store, clock) = (
        state.sender.clone(),
        state.store.clone(),
        state.clock.clone(),
    );
    let task_claim = claimed.clone();
    let attempt = tokio::spawn(async move {
        let attempt = sender.send(&task_claim).await;
        // A test is never retried: with no retries left, a failure is final.
        let mut once = task_claim;
        once.max_retries = 0;
        let completion = retry::complete(&once, &attempt, clock.now(), 0.0);
        store
            .delivery_complete_many(&[completion], clock.now())
            .await
            .map(|_| attempt)
    })
    .await
    .map_err(|e| ApiError::internal(&e))??;
    Ok(ok(
        StatusCode::OK,
        &TestResult {
            delivery_id: claimed.id,
            event_id: claimed.event_id,
            success: attempt.succeeded(),
            status_code: attempt.status,
            duration_ms: attempt.duration_ms,
            error: attempt.error,
        },
    ))
}

pub async fn stats(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    ctx.query_pairs(&[])?;
    let s = state
        .store
        .webhook_stats_get(id, &ctx.caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ok(StatusCode::OK, &s))
}

/// Wakes idle dispatchers; a failure only delays the work until their poll.
pub async fn wake(state: &ApiState) {
    if let Err(e) = state.store.queue_wakeup().await {
        tracing::warn!(error = %e, "cannot notify dispatchers; they will find the work at their next poll");
    }
}
