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

use serde_json::json;
use uuid::Uuid;
use warp::http::StatusCode;

use super::reply::{Listed, Success};
use super::request::{
    AnyQuery, DeliveryPath, DeliveryQuery, Input, Json, NoBody, NoQuery, Page, WebhookId,
};
use super::wire::{Delivery, DeliveryAttempt, Empty, TestResult, WebhookStats};
use super::ApiState;
use crate::dispatch::retry;
use crate::store::RetryOutcome;
use crate::web::envelope::Pagination;
use crate::web::ApiError;

async fn owned_webhook(state: &ApiState, id: Uuid, owner: &str) -> Result<(), ApiError> {
    state
        .store
        .webhook_get(id, owner)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// `GET /api/webhooks/{id}/deliveries`
pub async fn list(
    state: &ApiState,
    req: Input<WebhookId, DeliveryQuery, NoBody>,
) -> Result<Listed<Delivery>, ApiError> {
    let WebhookId(id) = req.path;
    let DeliveryQuery { page, status } = req.query;
    let owner = &req.caller.owner;
    owned_webhook(state, id, owner).await?;
    let (rows, total) = state
        .store
        .delivery_list_by_webhook(id, owner, status, page.limit, page.offset())
        .await?;
    Ok(Listed {
        items: rows.into_iter().map(Delivery::from).collect(),
        pagination: Pagination::new(page.page, page.limit, total),
    })
}

/// `POST /api/webhooks/{id}/deliveries/{deliveryId}/retry`
pub async fn retry(
    state: &ApiState,
    req: Input<DeliveryPath, AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<Delivery>, ApiError> {
    let DeliveryPath {
        webhook_id,
        delivery_id,
    } = req.path;
    let owner = &req.caller.owner;
    match state
        .store
        .delivery_retry(delivery_id, webhook_id, owner)
        .await?
    {
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
        .delivery_get(delivery_id, webhook_id, owner)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Success::new(d.into()))
}

/// `GET /api/webhooks/{id}/deliveries/{deliveryId}/attempts`: every
/// attempt, newest first.
pub async fn attempts(
    state: &ApiState,
    req: Input<DeliveryPath, Page, NoBody>,
) -> Result<Listed<DeliveryAttempt>, ApiError> {
    let DeliveryPath {
        webhook_id,
        delivery_id,
    } = req.path;
    let page = req.query;
    let (rows, total) = state
        .store
        .delivery_attempt_list(
            delivery_id,
            webhook_id,
            &req.caller.owner,
            page.limit,
            page.offset(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Listed {
        items: rows.into_iter().map(DeliveryAttempt::from).collect(),
        pagination: Pagination::new(page.page, page.limit, total),
    })
}

/// `POST /api/webhooks/{id}/test`
pub async fn test_send(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<TestResult>, ApiError> {
    let WebhookId(id) = req.path;
    let now = state.clock.now();
    let payload = json!({
        "webhookId": id,
        "message": "This is a test event sent by Postbox on request.",
        "sentAt": now,
    });
    let claimed = state
        .store
        .delivery_test_create(id, &req.caller.owner, &payload, now, state.test_lease)
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
        once.retry_schedule = None;
        let completion = retry::complete(&once, &attempt, clock.now(), 0.0);
        if attempt.gone() {
            crate::dispatch::disable_gone(&store, once.webhook_id, clock.now()).await;
        }
        store
            .delivery_complete_many(&[completion], clock.now())
            .await
            .map(|_| attempt)
    })
    .await
    .map_err(|e| ApiError::internal(&e))??;
    Ok(Success::new(TestResult {
        delivery_id: claimed.id,
        event_id: claimed.event_id,
        success: attempt.succeeded(),
        status_code: attempt.status,
        duration_ms: attempt.duration_ms,
        error: attempt.error,
    }))
}

/// `GET /api/webhooks/{id}/stats`
pub async fn stats(
    state: &ApiState,
    req: Input<WebhookId, NoQuery, NoBody>,
) -> Result<Success<WebhookStats>, ApiError> {
    let s = state
        .store
        .webhook_stats_get(req.path.0, &req.caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Success::new(s.into()))
}

/// Wakes idle dispatchers; a failure only delays the work until their poll.
pub async fn wake(state: &ApiState) {
    if let Err(e) = state.store.queue_wakeup().await {
        tracing::warn!(error = %e, "cannot notify dispatchers; they will find the work at their next poll");
    }
}
