//! What a webhook does with its events before sending (SPEC 7.3): the
//! `filter`, `template` and `batch` fields' rules and schemas, and the two
//! routes that try them without sending anything: `POST
//! /api/webhooks/filter-test` and `POST /api/webhooks/template-preview`.
//! A filter's path is parsed by Postgres (the parser the fan-out uses); a
//! template by minijinja (the renderer the dispatcher uses).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use uuid::Uuid;

use super::reply::Success;
use super::request::{parse_uuid, AnyQuery, Input, Json};
use super::validate::{required, NO_NUL};
use super::wire::{FilterTestRequest, FilterTestResult, TemplatePreview, TemplatePreviewRequest};
use super::ApiState;
use crate::template::{EventView, Template};
use crate::web::ApiError;

/// How many of a webhook's newest deliveries `filter-test` looks at.
pub const FILTER_TEST_RECENT: i64 = 20;
/// Longest filter `path`, in bytes.
pub const FILTER_PATH_MAX: usize = 4096;
/// `batch.maxEvents`: the range accepted, inclusive.
pub const BATCH_MAX_EVENTS: (i64, i64) = (1, 1000);
/// `batch.maxWaitMs`: the range accepted, inclusive.
pub const BATCH_MAX_WAIT_MS: (i64, i64) = (0, 60_000);
/// `batch.maxWaitMs` when left out.
pub const DEFAULT_BATCH_MAX_WAIT_MS: i64 = 1000;

/// `filter`: `null` (none) or `{"contains": {...}, "path": "..."}`, at
/// least one of them; the path must parse and be a predicate (asked of
/// Postgres: `postbox.webhook_filter_problem`).
pub async fn filter(state: &ApiState, field: &str, v: Value) -> Result<Option<Value>, ApiError> {
    let shape = || {
        ApiError::validation(
            field,
            "must be null or an object with \"contains\" (an object) and/or \"path\" (a SQL/JSON path predicate)",
        )
    };
    let map = match v {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(shape()),
    };
    if map.is_empty() {
        return Err(shape());
    }
    for (key, value) in &map {
        match (key.as_str(), value) {
            ("contains", Value::Object(_)) => {}
            ("contains", _) => {
                return Err(ApiError::validation(
                    &format!("{field}.contains"),
                    "must be an object (the payload must contain it: JSON containment)",
                ))
            }
            ("path", Value::String(p)) if p.len() > FILTER_PATH_MAX => {
                return Err(ApiError::validation(
                    &format!("{field}.path"),
                    format!("must be at most {FILTER_PATH_MAX} bytes"),
                ))
            }
            ("path", Value::String(_)) => {}
            ("path", _) => {
                return Err(ApiError::validation(
                    &format!("{field}.path"),
                    "must be a string: a SQL/JSON path predicate such as $.amount > 1000",
                ))
            }
            (other, _) => {
                return Err(ApiError::validation(
                    &format!("{field}.{other}"),
                    "is not a filter key: only \"contains\" and \"path\"",
                ))
            }
        }
    }
    let v = Value::Object(map);
    if let Some(problem) = state.store.webhook_filter_problem(&v).await? {
        return Err(ApiError::validation(field, problem));
    }
    Ok(Some(v))
}

/// `template`: `null` (none), `"slack"`, `"discord"`, `"teams"` or
/// `{"body": "<jinja>"}` that parses.
pub fn template(field: &str, v: Value) -> Result<Option<Value>, ApiError> {
    let t = Template::parse(&v).map_err(|e| ApiError::validation(field, e.to_string()))?;
    if holds_nul(&v) {
        return Err(ApiError::validation(field, "must not contain NUL (U+0000)"));
    }
    match t {
        None => Ok(None),
        Some(t) => {
            t.check()
                .map_err(|e| ApiError::validation(field, e.to_string()))?;
            Ok(Some(v))
        }
    }
}

/// `batch`: `null` (one request per event) or `{"maxEvents": 1-1000,
/// "maxWaitMs": 0-60000}` (`maxWaitMs` defaults to 1000), stored with both.
pub fn batch(v: Value) -> Result<Option<Value>, ApiError> {
    let map = match v {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => {
            return Err(ApiError::validation(
                "batch",
                "must be null or {\"maxEvents\": 1-1000, \"maxWaitMs\": 0-60000}",
            ))
        }
    };
    if let Some(other) = map.keys().find(|k| *k != "maxEvents" && *k != "maxWaitMs") {
        return Err(ApiError::validation(
            &format!("batch.{other}"),
            "is not a batch setting: only maxEvents and maxWaitMs",
        ));
    }
    let max_events = super::validate::int(
        "batch.maxEvents",
        required("batch.maxEvents", map.get("maxEvents").cloned())?,
        BATCH_MAX_EVENTS,
    )?;
    let max_wait_ms = match map.get("maxWaitMs") {
        None => DEFAULT_BATCH_MAX_WAIT_MS as i32,
        Some(x) => super::validate::int("batch.maxWaitMs", x.clone(), BATCH_MAX_WAIT_MS)?,
    };
    Ok(Some(
        json!({ "maxEvents": max_events, "maxWaitMs": max_wait_ms }),
    ))
}

/// Whether a key or a string anywhere in `v` holds NUL.
fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(holds_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn nullable_object() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
}

/// `filter`: what [`filter`] accepts.
pub fn filter_schema() -> ObjectBuilder {
    nullable_object()
        .property(
            "contains",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(NO_NUL)),
                ))
                .additional_properties(Some(Ref::from_schema_name("JsonValue")))
                .description(Some("JSON containment: the payload must contain this object (payload @> contains)")),
        )
        .property(
            "path",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(FILTER_PATH_MAX))
                .pattern(Some(NO_NUL))
                .description(Some(
                    "a SQL/JSON path predicate on the payload, e.g. $.amount > 1000 && $.currency == \"EUR\"",
                )),
        )
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(
            "only events whose payload matches get a delivery; both parts must hold; null: every event",
        ))
}

/// `template`: what [`template`] accepts.
pub fn template_schema() -> RefOr<Schema> {
    let body = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "body",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(crate::template::SOURCE_MAX))
                .pattern(Some(NO_NUL))
                .description(Some(
                    "a Jinja template (minijinja) over id, type, timestamp and data; it must parse",
                )),
        )
        .required("body")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let named = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["slack", "discord", "teams"]));
    let mut one_of = utoipa::openapi::schema::OneOfBuilder::new()
        .item(named)
        .item(body)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build();
    one_of.description = Some(
        "the request body rendered from the event: a chat tool's built-in message, or a Jinja template over id, type, timestamp and data; null: the standard body".into(),
    );
    RefOr::T(Schema::OneOf(one_of))
}

/// `batch`: what [`batch`] accepts.
pub fn batch_schema() -> ObjectBuilder {
    let int = |(min, max): (i64, i64)| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    nullable_object()
        .property("maxEvents", int(BATCH_MAX_EVENTS))
        .property(
            "maxWaitMs",
            int(BATCH_MAX_WAIT_MS).default(Some(json!(DEFAULT_BATCH_MAX_WAIT_MS))),
        )
        .required("maxEvents")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(
            "one request carries up to maxEvents events, sent once that many are queued or the oldest has waited maxWaitMs; null: one request per event",
        ))
}

/// The sample event of a template preview.
pub fn sample_event_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(super::validate::EVENT_TYPE_MAX)),
        )
        .property("data", super::validate::payload_schema())
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Uuid,
                ))),
        )
        .property(
            "timestamp",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                ))),
        )
        .required("type")
        .required("data")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("the event to render: type and data; id (default the nil UUID) and timestamp (default now) optional"))
}

/// `POST /api/webhooks/filter-test`: whether `data` matches `filter`, as
/// the fan-out would decide it, and with `webhookId`, which of the events of
/// that webhook's newest deliveries it matches. Sends nothing.
pub async fn filter_test(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<FilterTestRequest>>,
) -> Result<Success<FilterTestResult>, ApiError> {
    let Json(b) = req.body;
    // Present, and null means no filter (every payload matches).
    let raw = b
        .filter
        .ok_or_else(|| ApiError::validation("filter", "is required"))?;
    let filter = filter(state, "filter", raw).await?;
    let webhook = match b.webhook_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_uuid("webhookId", &s)?),
        Some(_) => return Err(ApiError::validation("webhookId", "must be a UUID")),
    };
    let data = match b.data {
        None | Some(Value::Null) if webhook.is_some() => None,
        None | Some(Value::Null) => {
            return Err(ApiError::validation(
                "data",
                "is required (or give webhookId to test its recent events)",
            ))
        }
        Some(d) if d.is_object() => Some(d),
        Some(_) => return Err(ApiError::validation("data", "must be a JSON object")),
    };
    let matches = match (&filter, &data) {
        (_, None) => None,
        (None, Some(_)) => Some(true),
        (Some(f), Some(d)) => Some(state.store.webhook_filter_test(f, d).await?),
    };
    let mut recent = Vec::new();
    if let Some(id) = webhook {
        // Not the owner's: 404, as every route that takes a webhook id.
        if state
            .store
            .webhook_get(id, &req.caller.owner)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("webhook"));
        }
        // No filter: every event matches.
        let f = filter.clone().unwrap_or_else(|| json!({}));
        recent = state
            .store
            .webhook_filter_test_recent(&f, id, &req.caller.owner, FILTER_TEST_RECENT)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
    }
    Ok(Success::new(FilterTestResult { matches, recent }))
}

/// `POST /api/webhooks/template-preview`: the body `template` renders for
/// `event` (`type` and `data`; `id` and `timestamp` optional). Sends nothing.
pub async fn template_preview(
    state: &ApiState,
    req: Input<(), AnyQuery, Json<TemplatePreviewRequest>>,
) -> Result<Success<TemplatePreview>, ApiError> {
    let _ = state;
    let Json(b) = req.body;
    // Present, and null means the standard body.
    let raw = b
        .template
        .ok_or_else(|| ApiError::validation("template", "is required"))?;
    let template = template("template", raw)?;
    let event = required("event", b.event)?;
    let Value::Object(event) = event else {
        return Err(ApiError::validation(
            "event",
            "must be an object: {type, data, id?, timestamp?}",
        ));
    };
    if let Some(other) = event
        .keys()
        .find(|k| !["id", "type", "timestamp", "data"].contains(&k.as_str()))
    {
        return Err(ApiError::validation(
            &format!("event.{other}"),
            "is not an event field: only id, type, timestamp and data",
        ));
    }
    let event_type = match required("event.type", event.get("type").cloned())? {
        Value::String(s) if !s.is_empty() && s.len() <= super::validate::EVENT_TYPE_MAX => s,
        _ => {
            return Err(ApiError::validation(
                "event.type",
                "must be an event type name",
            ))
        }
    };
    let data = required("event.data", event.get("data").cloned())?;
    if !data.is_object() {
        return Err(ApiError::validation("event.data", "must be a JSON object"));
    }
    // What an event may hold (Postgres jsonb refuses NUL).
    if holds_nul(&data) {
        return Err(ApiError::validation(
            "event.data",
            "must not contain NUL (U+0000) in a key or a string",
        ));
    }
    let id = match event.get("id") {
        None | Some(Value::Null) => Uuid::nil(),
        Some(Value::String(s)) => parse_uuid("event.id", s)?,
        Some(_) => return Err(ApiError::validation("event.id", "must be a UUID")),
    };
    let created_at = match event.get("timestamp") {
        None | Some(Value::Null) => Utc::now(),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map_err(|_| ApiError::validation("event.timestamp", "must be an RFC 3339 time"))?
            .with_timezone(&Utc),
        Some(_) => {
            return Err(ApiError::validation(
                "event.timestamp",
                "must be an RFC 3339 time",
            ))
        }
    };
    let payload = data.to_string();
    let view = EventView {
        id,
        event_type: &event_type,
        created_at,
        payload: &payload,
    };
    let body = match template.as_ref().map(Template::parse) {
        Some(Ok(Some(t))) => t
            .render(&view)
            .map_err(|e| ApiError::validation("template", e.to_string()))?,
        _ => crate::dispatch::sender::standard_body(id, &event_type, created_at, &payload),
    };
    Ok(Success::new(TemplatePreview { body }))
}
