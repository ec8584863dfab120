//! Webhook handlers: create, list, get, update, delete, rotate the secret,
//! and the event catalogue. The secret appears only in the answers to create
//! and regenerate-secret.

use serde_json::json;

use super::reply::{Created, Listed, Success};
use super::request::{AnyQuery, Input, Json, NoBody, NoQuery, Page, WebhookId};
use super::shaping;
use super::validate::{self as v, required};
use super::wire::{
    Deleted, Delivery, Empty, EventType, RotateRequest, RotateResult, Webhook, WebhookBody,
    WebhookCreate, WebhookDetail, WebhookWithSecret,
};
use super::ApiState;
use crate::store::{JobKind, NewWebhook, WebhookPatch};
use crate::web::envelope::Pagination;
use crate::web::ApiError;

/// Validates every present field into a patch; the URL last (it may look up DNS).
async fn patch(state: &ApiState, b: WebhookBody) -> Result<WebhookPatch, ApiError> {
    let mut p = WebhookPatch {
        name: b.name.map(v::name).transpose()?,
        description: b.description.map(v::description).transpose()?,
        ..Default::default()
    };
    if let Some(events) = b.events {
        let catalogue = state.store.event_type_list().await?;
        p.events = Some(v::events(events, &catalogue)?);
    }
    p.headers = b.headers.map(v::headers).transpose()?;
    p.max_retries = b
        .max_retries
        .map(|x| v::int("maxRetries", x, v::MAX_RETRIES))
        .transpose()?;
    p.retry_delay_seconds = b
        .retry_delay
        .map(|x| v::int("retryDelay", x, v::RETRY_DELAY))
        .transpose()?;
    p.active = b.active.map(|x| v::boolean("active", x)).transpose()?;
    p.template = b
        .template
        .map(|x| shaping::template("template", x))
        .transpose()?;
    p.batch = b.batch.map(shaping::batch).transpose()?;
    if let Some(filter) = b.filter {
        p.filter = Some(shaping::filter(state, "filter", filter).await?);
    }
    p.paused = b.paused.map(|x| v::boolean("paused", x)).transpose()?;
    p.rate_limit = b
        .rate_limit
        .map(|x| v::optional_int("rateLimit", x, v::RATE_LIMIT))
        .transpose()?;
    p.max_in_flight = b
        .max_in_flight
        .map(|x| v::optional_int("maxInFlight", x, v::MAX_IN_FLIGHT))
        .transpose()?;
    p.retry_schedule = b.retry_schedule.map(v::retry_schedule).transpose()?;
    p.ordering_policy = b.ordering_policy.map(v::ordering_policy).transpose()?;
    if let Some(url) = b.url {
        p.url = Some(v::url(state, url).await?);
    }
    Ok(p)
}

/// `POST /api/webhooks`
pub async fn create(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<WebhookCreate>>,
) -> Result<Created<WebhookWithSecret>, ApiError> {
    let Json(WebhookCreate(mut b)) = req.body;
    // Required fields first, so that a missing one is named before any other rule.
    b.name = Some(required("name", b.name.take())?);
    b.url = Some(required("url", b.url.take())?);
    b.events = Some(required("events", b.events.take())?);
    let backfill = match b.backfill_since.take() {
        None | Some(serde_json::Value::Null) => None,
        Some(x) => Some(v::timestamp("backfillSince", x)?),
    };
    let p = patch(state, b).await?;
    let secret = (state.new_secret)();
    let new = NewWebhook {
        owner_id: req.caller.owner,
        name: p.name.unwrap_or_default(),
        description: p.description.flatten(),
        url: p.url.unwrap_or_default(),
        secret: secret.clone(),
        events: p.events.unwrap_or_default(),
        headers: p.headers.unwrap_or_else(|| json!({})),
        max_retries: p.max_retries.unwrap_or(v::DEFAULT_MAX_RETRIES),
        retry_delay_seconds: p.retry_delay_seconds.unwrap_or(v::DEFAULT_RETRY_DELAY),
        active: p.active.unwrap_or(true),
        filter: p.filter.flatten(),
        template: p.template.flatten(),
        batch: p.batch.flatten(),
        paused: p.paused.unwrap_or(false),
        rate_limit: p.rate_limit.flatten(),
        max_in_flight: p.max_in_flight.flatten(),
        retry_schedule: p.retry_schedule.flatten(),
        ordering_policy: p.ordering_policy.unwrap_or_default(),
    };
    let owner = new.owner_id.clone();
    let webhook: Webhook = state.store.webhook_insert(&new).await?.into();
    if let Some(since) = backfill {
        let now = state.clock.now();
        if since < now {
            let range = super::recovery::backfill_range(since, now);
            super::recovery::start(state, webhook.id, &owner, JobKind::Replay, range).await?;
        }
    }
    Ok(Created::new(WebhookWithSecret { webhook, secret }))
}

/// `GET /api/webhooks`
pub async fn list(
    state: &ApiState,
    req: Input<(), Page, NoBody>,
) -> Result<Listed<Webhook>, ApiError> {
    let page = req.query;
    let (rows, total) = state
        .store
        .webhook_list(&req.caller.owner, page.limit, page.offset())
        .await?;
    Ok(Listed {
        items: rows.into_iter().map(Webhook::from).collect(),
        pagination: Pagination::new(page.page, page.limit, total),
    })
}

/// `GET /api/webhooks/{id}`
pub async fn get(
    state: &ApiState,
    req: Input<WebhookId, NoQuery, NoBody>,
) -> Result<Success<WebhookDetail>, ApiError> {
    let WebhookId(id) = req.path;
    let owner = &req.caller.owner;
    let webhook = state
        .store
        .webhook_get(id, owner)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?
        .into();
    let (recent, _) = state
        .store
        .delivery_list_by_webhook(id, owner, None, v::RECENT_DELIVERIES, 0)
        .await?;
    Ok(Success::new(WebhookDetail {
        webhook,
        recent_deliveries: recent.into_iter().map(Delivery::from).collect(),
    }))
}

/// `PUT /api/webhooks/{id}`
pub async fn update(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Json<WebhookBody>>,
) -> Result<Success<Webhook>, ApiError> {
    if req.body.0.backfill_since.is_some() {
        return Err(ApiError::validation(
            "backfillSince",
            "is accepted on create only; use POST /api/webhooks/{id}/replay",
        ));
    }
    let p = patch(state, req.body.0).await?;
    let w = state
        .store
        .webhook_update(req.path.0, &req.caller.owner, &p)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Success::new(w.into()))
}

/// `POST /api/webhooks/{id}/pause`: holds the webhook's deliveries.
pub async fn pause(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<Webhook>, ApiError> {
    set_paused(state, req.path.0, &req.caller.owner, true).await
}

/// `POST /api/webhooks/{id}/resume`: releases them, in order of due time.
pub async fn resume(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Option<Json<Empty>>>,
) -> Result<Success<Webhook>, ApiError> {
    let answer = set_paused(state, req.path.0, &req.caller.owner, false).await?;
    super::deliveries::wake(state).await;
    Ok(answer)
}

async fn set_paused(
    state: &ApiState,
    id: uuid::Uuid,
    owner: &str,
    paused: bool,
) -> Result<Success<Webhook>, ApiError> {
    let w = state
        .store
        .webhook_pause(id, owner, paused)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Success::new(w.into()))
}

/// `DELETE /api/webhooks/{id}`
pub async fn delete(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, NoBody>,
) -> Result<Success<Deleted>, ApiError> {
    let WebhookId(id) = req.path;
    if !state.store.webhook_delete(id, &req.caller.owner).await? {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(Success::new(Deleted { deleted: true, id }))
}

/// `POST /api/webhooks/{id}/regenerate-secret`
pub async fn regenerate_secret(
    state: &ApiState,
    req: Input<WebhookId, AnyQuery, Option<Json<RotateRequest>>>,
) -> Result<Success<RotateResult>, ApiError> {
    let WebhookId(id) = req.path;
    let b = req.body.map(|j| j.0).unwrap_or_default();
    let grace = match b.grace_seconds {
        None | Some(serde_json::Value::Null) => 0,
        Some(x) => v::int("graceSeconds", x, (0, v::GRACE_MAX))?,
    };
    let secret = (state.new_secret)();
    let expires = state
        .store
        .webhook_rotate_secret(id, &req.caller.owner, &secret, grace)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Success::new(RotateResult {
        id,
        previous_secret_expires_at: expires,
        secret,
    }))
}

/// `GET /api/webhooks/events`: the whole catalogue as one page.
pub async fn catalogue(
    state: &ApiState,
    _: Input<(), NoQuery, NoBody>,
) -> Result<Listed<EventType>, ApiError> {
    let types = state.store.event_type_list().await?;
    let n = types.len() as i64;
    Ok(Listed {
        items: types.into_iter().map(EventType::from).collect(),
        pagination: Pagination::new(1, n.max(1), n),
    })
}
