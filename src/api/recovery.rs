//! Recover and replay, owner-scoped: each records a job
//! (`postbox.webhook_jobs`) and runs its bounded batches for up to
//! `ANSWER_WITHIN`, then answers 202 with the count so far; a range that
//! needs more goes on in a task of its own, and any maintenance run picks up
//! a job whose task ended with its process. Earlier attempts stay in the
//! history: the delivery rows are reused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::reply::Accepted;
use super::request::{AnyQuery, Input, Json, WebhookId};
use super::validate::{self as v, required};
use super::wire::{JobAccepted, RangeRequest};
use super::ApiState;
use crate::store::{JobKind, JobRange};
use crate::web::ApiError;

/// How long a request runs batches before it answers with the count so far.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);

/// `POST /api/webhooks/{id}/recover`
pub async fn recover(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Json<RangeRequest>>,
) -> Result<Accepted<JobAccepted>, ApiError> {
    let range = range(state, req.body.0).await?;
    start(
        state,
        req.path.0,
        &req.caller.owner,
        JobKind::Recover,
        range,
    )
    .await
}

/// `POST /api/webhooks/{id}/replay`
pub async fn replay(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Json<RangeRequest>>,
) -> Result<Accepted<JobAccepted>, ApiError> {
    let range = range(state, req.body.0).await?;
    start(state, req.path.0, &req.caller.owner, JobKind::Replay, range).await
}

async fn range(state: &ApiState, b: RangeRequest) -> Result<JobRange, ApiError> {
    let since = v::timestamp("since", required("since", b.since)?)?;
    let until = match b.until {
        None | Some(serde_json::Value::Null) => state.clock.now(),
        Some(x) => v::timestamp("until", x)?,
    };
    let event_types = match b.event_types {
        None | Some(serde_json::Value::Null) => None,
        Some(x) => {
            let catalogue = state.store.event_type_list().await?;
            Some(v::event_patterns("eventTypes", x, &catalogue)?)
        }
    };
    Ok(JobRange {
        since,
        until,
        event_types,
    })
}

/// Records the job and runs it for up to `ANSWER_WITHIN`; the rest in a
/// task of its own.
pub(super) async fn start(
    state: &ApiState,
    webhook: Uuid,
    owner: &str,
    kind: JobKind,
    range: JobRange,
) -> Result<Accepted<JobAccepted>, ApiError> {
    let job = state
        .store
        .webhook_job_insert(webhook, owner, kind, &range)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let clock = state.clock.clone();
    let progress = state
        .store
        .webhook_job_run(job, kind, ANSWER_WITHIN, || clock.now())
        .await?;
    let (count, finished) = progress.map_or((0, false), |p| (p.done, p.finished));
    if !finished {
        let (store, clock) = (state.store.clone(), state.clock.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .webhook_job_run(job, kind, Duration::MAX, || clock.now())
                .await
            {
                tracing::warn!(%job, error = %e, "recover/replay job stopped; the next maintenance run continues it");
            }
        });
    }
    super::deliveries::wake(state).await;
    Ok(Accepted::new(JobAccepted {
        count,
        job_id: job,
        finished,
    }))
}

/// `backfillSince` of a create: a replay from then until now.
pub(super) fn backfill_range(since: DateTime<Utc>, now: DateTime<Utc>) -> JobRange {
    JobRange {
        since,
        until: now,
        event_types: None,
    }
}
