//! Webhook handlers: create, list, get, update, delete, rotate the secret,
//! and the event catalogue. The secret appears only in the answers to create
//! and regenerate-secret.

use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::envelope::{list as list_reply, ok, ApiError, Pagination};
use super::request::{present, Ctx, Field};
use super::validate::{self as v, required};
use super::ApiState;
use crate::store::{Delivery, NewWebhook, Webhook, WebhookPatch};

/// How many deliveries `GET /api/webhooks/{id}` shows.
pub const RECENT_DELIVERIES: i64 = 10;

/// The fields of create and update; all optional here, create checks the
/// required ones. Unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookBody {
    #[serde(default, deserialize_with = "present")]
    pub name: Field,
    #[serde(default, deserialize_with = "present")]
    pub description: Field,
    #[serde(default, deserialize_with = "present")]
    pub url: Field,
    #[serde(default, deserialize_with = "present")]
    pub events: Field,
    #[serde(default, deserialize_with = "present")]
    pub headers: Field,
    #[serde(default, deserialize_with = "present")]
    pub max_retries: Field,
    #[serde(default, deserialize_with = "present")]
    pub retry_delay: Field,
    #[serde(default, deserialize_with = "present")]
    pub active: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateBody {
    #[serde(default, deserialize_with = "present")]
    grace_seconds: Field,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithSecret<'a> {
    #[serde(flatten)]
    webhook: &'a Webhook,
    secret: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithDeliveries<'a> {
    #[serde(flatten)]
    webhook: &'a Webhook,
    recent_deliveries: &'a [Delivery],
}

fn new_secret() -> String {
    crate::signing::generate_secret(&mut rand::rng())
}

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
    if let Some(url) = b.url {
        p.url = Some(v::url(state, url).await?);
    }
    Ok(p)
}

pub async fn create(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let mut b: WebhookBody = ctx.json_required()?;
    // Required fields first, so that a missing one is named before any other rule.
    let name = required("name", b.name.take())?;
    let url = required("url", b.url.take())?;
    let events = required("events", b.events.take())?;
    b.name = Some(name);
    b.url = Some(url);
    b.events = Some(events);
    let p = patch(state, b).await?;
    let secret = new_secret();
    let new = NewWebhook {
        owner_id: ctx.caller.owner.clone(),
        name: p.name.unwrap_or_default(),
        description: p.description.flatten(),
        url: p.url.unwrap_or_default(),
        secret: secret.clone(),
        events: p.events.unwrap_or_default(),
        headers: p.headers.unwrap_or_else(|| json!({})),
        max_retries: p.max_retries.unwrap_or(v::DEFAULT_MAX_RETRIES),
        retry_delay_seconds: p.retry_delay_seconds.unwrap_or(v::DEFAULT_RETRY_DELAY),
        active: p.active.unwrap_or(true),
    };
    let w = state.store.webhook_insert(&new).await?;
    Ok(ok(
        StatusCode::CREATED,
        &WithSecret {
            webhook: &w,
            secret: &secret,
        },
    ))
}

pub async fn list(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let page = v::page(&ctx, false)?;
    let (rows, total) = state
        .store
        .webhook_list(&ctx.caller.owner, page.limit, page.offset())
        .await?;
    Ok(list_reply(
        &rows,
        Pagination::new(page.page, page.limit, total),
    ))
}

pub async fn get(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    ctx.query_pairs(&[])?;
    let owner = &ctx.caller.owner;
    let w = state
        .store
        .webhook_get(id, owner)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let (recent, _) = state
        .store
        .delivery_list_by_webhook(id, owner, None, RECENT_DELIVERIES, 0)
        .await?;
    Ok(ok(
        StatusCode::OK,
        &WithDeliveries {
            webhook: &w,
            recent_deliveries: &recent,
        },
    ))
}

pub async fn update(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    let b: WebhookBody = ctx.json_required()?;
    let p = patch(state, b).await?;
    let w = state
        .store
        .webhook_update(id, &ctx.caller.owner, &p)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ok(StatusCode::OK, &w))
}

pub async fn delete(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    if !state.store.webhook_delete(id, &ctx.caller.owner).await? {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(ok(StatusCode::OK, &json!({"id": id, "deleted": true})))
}

pub async fn regenerate_secret(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    let id = ctx.uuid(0, "id")?;
    let b: RotateBody = ctx.json()?.unwrap_or_default();
    let grace = match b.grace_seconds {
        None | Some(serde_json::Value::Null) => 0,
        Some(x) => v::int("graceSeconds", x, (0, v::GRACE_MAX))?,
    };
    let secret = new_secret();
    let expires = state
        .store
        .webhook_rotate_secret(id, &ctx.caller.owner, &secret, grace)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ok(
        StatusCode::OK,
        &json!({"id": id, "secret": secret, "previousSecretExpiresAt": expires}),
    ))
}

pub async fn catalogue(state: &ApiState, ctx: Ctx) -> Result<Response, ApiError> {
    ctx.query_pairs(&[])?;
    let types = state.store.event_type_list().await?;
    let n = types.len() as i64;
    Ok(list_reply(&types, Pagination::new(1, n.max(1), n)))
}
