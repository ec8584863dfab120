//! The API's wire types: what goes over HTTP, in camelCase, each deriving
//! its OpenAPI schema (`ToSchema`). Responses are built from the store's
//! plain rows (`From` impls here), so the store knows nothing of JSON.
//! Request bodies keep each field as raw JSON (`Field`): `validate` turns
//! them into typed values in a fixed order, naming the field it refuses;
//! their schemas state the same rules (`schema_with` functions in
//! `validate`, built from its limits).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::request::{present, Field};
use super::shaping;
use super::validate as v;
use crate::store;

/// A webhook: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub headers: serde_json::Value,
    pub max_retries: i32,
    /// Seconds before the first retry; doubles each retry.
    pub retry_delay: i32,
    pub active: bool,
    pub verified: bool,
    #[schema(required = true)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The payload filter; null: every event of the subscribed types.
    #[schema(schema_with = shaping::filter_schema, required = true)]
    pub filter: Option<serde_json::Value>,
    /// The body template; null: the standard body.
    #[schema(schema_with = shaping::template_schema, required = true)]
    pub template: Option<serde_json::Value>,
    /// The batch settings; null: one request per event.
    #[schema(schema_with = shaping::batch_schema, required = true)]
    pub batch: Option<serde_json::Value>,
    /// True holds this webhook's deliveries (not sent, retry budget kept).
    pub paused: bool,
    /// Requests per second across all dispatchers; null: no limit.
    #[schema(required = true)]
    pub rate_limit: Option<i32>,
    /// Requests in flight across all dispatchers; null: the server's
    /// per-endpoint default (`POSTBOX_ENDPOINT_CONCURRENCY` per dispatcher).
    #[schema(required = true)]
    pub max_in_flight: Option<i32>,
    /// Seconds before each retry; when set it replaces `maxRetries` and
    /// `retryDelay`.
    #[schema(required = true)]
    pub retry_schedule: Option<Vec<i32>>,
    /// What a failing delivery of an ordering key does to the later ones
    /// of its key.
    pub ordering_policy: OrderingPolicy,
    /// The circuit breaker (read only).
    pub breaker: Breaker,
}

/// A webhook's head-of-line policy for ordered delivery: `block` (a failing
/// delivery holds its key's later ones until it is delivered,
/// dead-lettered or cancelled) or `skip_failed` (a failed attempt lets the
/// next go; the failed one retries out of line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderingPolicy {
    Block,
    SkipFailed,
}

impl From<store::OrderingPolicy> for OrderingPolicy {
    fn from(p: store::OrderingPolicy) -> OrderingPolicy {
        match p {
            store::OrderingPolicy::Block => OrderingPolicy::Block,
            store::OrderingPolicy::SkipFailed => OrderingPolicy::SkipFailed,
        }
    }
}

/// A webhook's circuit breaker: `closed` (deliveries flow), `open` (held
/// after repeated failures; one probe at growing intervals) or `half_open`
/// (a probe is in flight).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Breaker {
    pub state: BreakerState,
    /// When it entered this state; null while it never opened.
    #[schema(required = true)]
    pub since: Option<DateTime<Utc>>,
    /// Why it opened (the last failure); null while it never opened.
    #[schema(required = true)]
    pub reason: Option<String>,
}

/// The three states of a circuit breaker.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl From<store::BreakerRow> for Breaker {
    fn from(r: store::BreakerRow) -> Breaker {
        Breaker {
            state: match r.state.as_str() {
                "open" => BreakerState::Open,
                "half_open" => BreakerState::HalfOpen,
                _ => BreakerState::Closed,
            },
            since: r.since,
            reason: r.reason,
        }
    }
}

impl From<store::WebhookRow> for Webhook {
    fn from(r: store::WebhookRow) -> Webhook {
        Webhook {
            id: r.id,
            name: r.name,
            description: r.description,
            url: r.url,
            events: r.event_types,
            headers: r.headers,
            max_retries: r.max_retries,
            retry_delay: r.retry_delay_seconds,
            active: r.active,
            verified: r.verified,
            disabled_at: r.disabled_at,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            filter: r.filter,
            template: r.template,
            batch: r.batch,
            paused: r.paused,
            rate_limit: r.rate_limit,
            max_in_flight: r.max_in_flight,
            retry_schedule: r.retry_schedule,
            ordering_policy: r.ordering_policy.into(),
            breaker: r.breaker.into(),
        }
    }
}

/// A webhook with its secret: the answer to create, the only one that shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_` and base64).
    #[schema(pattern = "^whsec_")]
    pub secret: String,
}

/// A webhook with its most recent deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDetail {
    #[serde(flatten)]
    pub webhook: Webhook,
    #[schema(schema_with = v::recent_deliveries_schema)]
    pub recent_deliveries: Vec<Delivery>,
}

/// A delivery's state: the SQL enum `postbox.delivery_status`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Success,
    Failed,
    Retrying,
    /// Waiting behind an earlier delivery of its ordering key.
    Held,
    /// Superseded by a newer event of its ordering key and type.
    Cancelled,
}

impl From<store::DeliveryStatus> for DeliveryStatus {
    fn from(s: store::DeliveryStatus) -> DeliveryStatus {
        match s {
            store::DeliveryStatus::Pending => DeliveryStatus::Pending,
            store::DeliveryStatus::Sending => DeliveryStatus::Sending,
            store::DeliveryStatus::Success => DeliveryStatus::Success,
            store::DeliveryStatus::Failed => DeliveryStatus::Failed,
            store::DeliveryStatus::Retrying => DeliveryStatus::Retrying,
            store::DeliveryStatus::Held => DeliveryStatus::Held,
            store::DeliveryStatus::Cancelled => DeliveryStatus::Cancelled,
        }
    }
}

/// One delivery of one event to one webhook.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    #[schema(required = true)]
    pub response_code: Option<i32>,
    #[schema(required = true)]
    pub response_body: Option<String>,
    #[schema(required = true)]
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The batch (its request's `webhook-id`) this delivery was last sent
    /// in; null when its webhook does not batch.
    #[schema(required = true)]
    pub batch_id: Option<Uuid>,
    /// Its event's ordering key: deliveries of one key go one at a time to
    /// this webhook, in commit order; null: unordered.
    #[schema(required = true)]
    pub ordering_key: Option<String>,
}

impl From<store::DeliveryRow> for Delivery {
    fn from(r: store::DeliveryRow) -> Delivery {
        Delivery {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            event_type: r.event_type,
            status: r.status.into(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            response_code: r.response_code,
            response_body: r.response_body,
            error_message: r.error_message,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
            batch_id: r.batch_id,
            ordering_key: r.ordering_key,
        }
    }
}

/// One attempt of a delivery, as recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// 1 for the first attempt, then 2, 3, ... (the `x-webhook-attempt` header).
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// Milliseconds from the request's start to its outcome.
    pub duration_ms: i32,
    /// The response status; null when no response arrived.
    #[schema(required = true)]
    pub response_code: Option<i32>,
    /// The first 16 KiB of the response body.
    #[schema(required = true)]
    pub response_body: Option<String>,
    /// Why the attempt failed (timeout, refused connection, non-2xx, ...).
    #[schema(required = true)]
    pub error_message: Option<String>,
}

impl From<store::AttemptRow> for DeliveryAttempt {
    fn from(r: store::AttemptRow) -> DeliveryAttempt {
        DeliveryAttempt {
            attempt: r.attempt,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            response_code: r.response_code,
            response_body: r.response_body,
            error_message: r.error_message,
        }
    }
}

/// Per-webhook delivery totals.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    pub total: i64,
    pub success: i64,
    pub failed: i64,
    pub pending: i64,
    pub retrying: i64,
    /// Percent of finished deliveries that succeeded; null before any finished.
    #[schema(required = true)]
    pub success_rate: Option<f64>,
    #[schema(required = true)]
    pub average_duration_ms: Option<f64>,
    #[schema(required = true)]
    pub last_delivery_at: Option<DateTime<Utc>>,
}

impl From<store::WebhookStatsRow> for WebhookStats {
    fn from(r: store::WebhookStatsRow) -> WebhookStats {
        WebhookStats {
            total: r.total,
            success: r.success,
            failed: r.failed,
            pending: r.pending,
            retrying: r.retrying,
            success_rate: r.success_rate,
            average_duration_ms: r.average_duration_ms,
            last_delivery_at: r.last_delivery_at,
        }
    }
}

/// Queue-wide counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
    pub delayed: i64,
    /// Due work held back by the pause.
    pub paused: i64,
    pub is_paused: bool,
}

impl From<store::QueueStatsRow> for QueueStats {
    fn from(r: store::QueueStatsRow) -> QueueStats {
        QueueStats {
            waiting: r.waiting,
            active: r.active,
            completed: r.completed,
            failed: r.failed,
            delayed: r.delayed,
            paused: r.paused,
            is_paused: r.is_paused,
        }
    }
}

/// One entry of the event catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventType {
    #[serde(rename = "type")]
    pub name: String,
    pub description: String,
}

impl From<store::EventType> for EventType {
    fn from(r: store::EventType) -> EventType {
        EventType {
            name: r.name,
            description: r.description,
        }
    }
}

/// Whether claiming is paused for every dispatcher.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseState {
    pub is_paused: bool,
}

/// How many rows an operation touched.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub count: u64,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub id: Uuid,
}

/// The answer to a secret rotation: the new secret, and until when the old
/// one keeps signing (null: it already stopped).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateResult {
    pub id: Uuid,
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    #[schema(pattern = "^whsec_")]
    pub secret: String,
}

/// The outcome of a test send.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub success: bool,
    #[schema(required = true)]
    pub status_code: Option<u16>,
    pub duration_ms: i32,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The id of a published event, and whether it was already there.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    /// The event's id; for a repeated idempotency key, the first event's.
    pub id: Uuid,
    /// True when the idempotency key was used before: nothing was added.
    pub duplicate: bool,
    /// Whether the stored event has this request's `type` and `data`
    /// (compared as JSON values); always true when `duplicate` is false.
    /// `duplicate: true, payloadMatches: false` means the key was reused for
    /// another event, which was not stored.
    pub payload_matches: bool,
}

/// The fields of a webhook update; absent fields keep their value, and
/// `active: true` clears `disabledAt`. Unknown fields are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = WebhookUpdate)]
pub struct WebhookBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::name_schema)]
    pub name: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::description_schema)]
    pub description: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::url_schema)]
    pub url: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::events_schema)]
    pub events: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::headers_schema)]
    pub headers: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::max_retries_schema)]
    pub max_retries: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::retry_delay_schema)]
    pub retry_delay: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::active_schema)]
    pub active: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::filter_schema)]
    pub filter: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::template_schema)]
    pub template: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::batch_schema)]
    pub batch: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::paused_schema)]
    pub paused: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::rate_limit_schema)]
    pub rate_limit: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::max_in_flight_schema)]
    pub max_in_flight: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::retry_schedule_schema)]
    pub retry_schedule: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::ordering_policy_schema)]
    pub ordering_policy: Field,
    /// Create only (an update refuses it): replay the owner's events since
    /// then to the new webhook.
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub backfill_since: Field,
}

/// The fields of a new webhook: `WebhookBody` with name, url and events
/// required (checked first, so a missing one is named before any other rule).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct WebhookCreate(pub WebhookBody);

impl PartialSchema for WebhookCreate {
    fn schema() -> RefOr<Schema> {
        let mut schema = WebhookBody::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            o.required = vec!["name".into(), "url".into(), "events".into()];
            o.description = Some("A new webhook. Unknown fields are refused.".into());
            if let Some(RefOr::T(Schema::Object(active))) = o.properties.get_mut("active") {
                active.default = Some(serde_json::json!(true));
            }
            let mut backfill = v::optional_timestamp_schema().build();
            backfill.description = Some(
                "replay the owner's matching events created since then to the new webhook (a recover/replay job)".into(),
            );
            o.properties
                .insert("backfillSince".into(), RefOr::T(Schema::Object(backfill)));
        }
        schema
    }
}

impl ToSchema for WebhookCreate {}

/// A recover or replay: the events created in `[since, until)`, of
/// `eventTypes` when given. Unknown fields are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RangeRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::timestamp_schema, required = true)]
    pub since: Field,
    /// Absent or null: now. Not later than `since`: an empty range.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::optional_timestamp_schema)]
    pub until: Field,
    /// Absent or null: every type; entries as in `events` (a type, group.* or *).
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::event_types_filter_schema)]
    pub event_types: Field,
}

/// A recover or replay under way: how many deliveries it requeued or
/// created so far, and whether it is done. A large range goes on in the
/// background in bounded batches (`postbox.webhook_jobs`, row `jobId`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobAccepted {
    pub count: i64,
    pub job_id: Uuid,
    pub finished: bool,
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::grace_schema)]
    pub grace_seconds: Field,
}

/// A requeue of failed deliveries.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryFailedRequest {
    /// Only this webhook's failed deliveries; absent or null: all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub webhook_id: Field,
}

/// An event to publish for the caller.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PublishRequest {
    #[serde(default, deserialize_with = "present", rename = "type")]
    #[schema(schema_with = v::event_type_schema, required = true)]
    pub event_type: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::payload_schema, required = true)]
    pub data: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::idempotency_key_schema)]
    pub idempotency_key: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::ordering_key_schema)]
    pub ordering_key: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::supersede_schema)]
    pub supersede: Field,
}

/// A new event type for the catalogue.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeCreate {
    #[serde(default, deserialize_with = "present", rename = "type")]
    #[schema(schema_with = v::event_type_name_schema, required = true)]
    pub name: Field,
    /// Absent: empty.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::type_description_schema)]
    pub description: Field,
}

/// A catalogue entry's new description.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeUpdate {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::type_description_schema, required = true)]
    pub description: Field,
}

/// No body, or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `POST /api/portal/sessions`: whose portal a link opens, for how long.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortalSessionRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::portal_owner_schema, required = true)]
    pub owner_id: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::portal_ttl_schema)]
    pub ttl_seconds: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::portal_admin_schema)]
    pub admin: Field,
}

/// A single-use portal link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalLink {
    /// Opens the owner's portal once; a second opening is refused.
    pub url: String,
    /// After this the link opens nothing.
    pub expires_at: DateTime<Utc>,
}

/// A filter to try on a sample payload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTestRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::filter_schema, required = true)]
    pub filter: Field,
    /// A sample payload; required unless `webhookId` is given.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = v::payload_schema)]
    pub data: Field,
    /// Also test the events of this webhook's 20 newest deliveries.
    #[serde(default, deserialize_with = "present", rename = "webhookId")]
    #[schema(value_type = Option<Uuid>)]
    pub webhook_id: Field,
}

/// Whether the sample payload, and each recent event, matches the filter.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterTestResult {
    /// True when an event with `data` as its payload would get a delivery;
    /// null when no `data` was given.
    #[schema(required = true)]
    pub matches: Option<bool>,
    /// With `webhookId`: the events of its newest deliveries, newest first.
    pub recent: Vec<FilterMatch>,
}

/// A recent event of the webhook and whether the filter matches it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterMatch {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub matches: bool,
}

impl From<store::FilterMatch> for FilterMatch {
    fn from(m: store::FilterMatch) -> FilterMatch {
        FilterMatch {
            event_id: m.event_id,
            event_type: m.event_type,
            created_at: m.created_at,
            matches: m.matches,
        }
    }
}

/// A template to render for a sample event.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePreviewRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::template_schema, required = true)]
    pub template: Field,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = shaping::sample_event_schema, required = true)]
    pub event: Field,
}

/// The body the template renders for the sample event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatePreview {
    /// Exactly the bytes that would be signed and sent, as text.
    pub body: String,
}
