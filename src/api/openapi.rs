//! The OpenAPI 3.0 document, built from `ROUTES` (so every served route is
//! described and nothing else) and the limits in `validate` (so the schemas
//! state the rules the handlers enforce). Built by hand with serde_json:
//! the router is not made of warp path filters that a generator could read.

use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::envelope::ApiError;
use super::request::{Ctx, MAX_BODY};
use super::router::{Access, RouteSpec, ROUTES};
use super::validate as v;
use super::ApiState;

/// Serves the document with the live event catalogue as enums, so that a
/// generated client or a fuzzer knows exactly which types are accepted.
pub async fn get(state: &ApiState, ctx: &Ctx) -> Result<Response, ApiError> {
    ctx.query_pairs(&[])?;
    let types: Vec<String> = state
        .store
        .event_type_list()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let doc = with_catalogue(document(), &types);
    Ok(warp::reply::with_status(warp::reply::json(&doc), StatusCode::OK).into_response())
}

/// `document()` with `types` as the enum of event types (publish) and of
/// subscriptions (each type, each `group.*`, and `*`).
pub fn with_catalogue(mut doc: Value, types: &[String]) -> Value {
    let mut subscriptions: Vec<String> = types.to_vec();
    let mut groups: Vec<String> = types
        .iter()
        .filter_map(|t| t.split_once('.').map(|(g, _)| format!("{g}.*")))
        .collect();
    groups.sort();
    groups.dedup();
    subscriptions.extend(groups);
    subscriptions.push("*".into());
    let schemas = &mut doc["components"]["schemas"];
    for name in ["WebhookCreate", "WebhookUpdate"] {
        schemas[name]["properties"]["events"]["items"]["enum"] = json!(subscriptions);
    }
    schemas["PublishRequest"]["properties"]["type"]["enum"] = json!(types);
    doc
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn success(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"type": "boolean", "enum": [true]}, "data": data}
    })
}

fn success_list(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data", "pagination"],
        "properties": {
            "success": {"type": "boolean", "enum": [true]},
            "data": {"type": "array", "items": item},
            "pagination": schema_ref("Pagination")
        }
    })
}

fn content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": content(schema_ref("Error"))})
}

/// What a route takes and answers: (request body schema and whether it is
/// required, success status, success schema, query parameters).
fn shape(r: &RouteSpec) -> (Option<(Value, bool)>, u16, Value, Vec<Value>) {
    let page_params = || {
        vec![
            json!({"name": "page", "in": "query", "required": false,
                   "schema": {"type": "integer", "minimum": 1, "maximum": v::PAGE_MAX, "default": 1}}),
            json!({"name": "limit", "in": "query", "required": false,
                   "schema": {"type": "integer", "minimum": 1, "maximum": v::LIMIT_MAX, "default": v::DEFAULT_LIMIT}}),
        ]
    };
    let empty = || (schema_ref("Empty"), false);
    match (r.method, r.path) {
        ("GET", "/api/openapi.json") => (None, 200, json!({"type": "object"}), vec![]),
        ("GET", "/api/webhooks/events") => {
            (None, 200, success_list(schema_ref("EventType")), vec![])
        }
        ("GET", "/api/webhooks/queue/stats") => {
            (None, 200, success(schema_ref("QueueStats")), vec![])
        }
        ("POST", "/api/webhooks/queue/pause") | ("POST", "/api/webhooks/queue/resume") => (
            Some(empty()),
            200,
            success(schema_ref("PauseState")),
            vec![],
        ),
        ("POST", "/api/webhooks/queue/retry-failed") => (
            Some((schema_ref("RetryFailedRequest"), false)),
            200,
            success(schema_ref("Count")),
            vec![],
        ),
        ("POST", "/api/webhooks") => (
            Some((schema_ref("WebhookCreate"), true)),
            201,
            success(schema_ref("WebhookWithSecret")),
            vec![],
        ),
        ("GET", "/api/webhooks") => (
            None,
            200,
            success_list(schema_ref("Webhook")),
            page_params(),
        ),
        ("GET", "/api/webhooks/{id}") => (None, 200, success(schema_ref("WebhookDetail")), vec![]),
        ("PUT", "/api/webhooks/{id}") => (
            Some((schema_ref("WebhookUpdate"), true)),
            200,
            success(schema_ref("Webhook")),
            vec![],
        ),
        ("DELETE", "/api/webhooks/{id}") => (None, 200, success(schema_ref("Deleted")), vec![]),
        ("POST", "/api/webhooks/{id}/regenerate-secret") => (
            Some((schema_ref("RotateRequest"), false)),
            200,
            success(schema_ref("RotateResult")),
            vec![],
        ),
        ("GET", "/api/webhooks/{id}/deliveries") => {
            let mut q = page_params();
            q.push(json!({"name": "status", "in": "query", "required": false,
                          "schema": schema_ref("DeliveryStatus")}));
            (None, 200, success_list(schema_ref("Delivery")), q)
        }
        ("POST", "/api/webhooks/{id}/deliveries/{deliveryId}/retry") => {
            (Some(empty()), 200, success(schema_ref("Delivery")), vec![])
        }
        ("POST", "/api/webhooks/{id}/test") => (
            Some(empty()),
            200,
            success(schema_ref("TestResult")),
            vec![],
        ),
        ("GET", "/api/webhooks/{id}/stats") => {
            (None, 200, success(schema_ref("WebhookStats")), vec![])
        }
        ("POST", "/api/events") => (
            Some((schema_ref("PublishRequest"), true)),
            202,
            success(schema_ref("PublishResult")),
            vec![],
        ),
        _ => (None, 200, json!({}), vec![]),
    }
}

fn operation(r: &RouteSpec) -> Value {
    let (body, status, ok_schema, mut params) = shape(r);
    for seg in r.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.insert(
                0,
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "string", "format": "uuid"}}),
            );
        }
    }
    let mut responses = Map::new();
    responses.insert(
        status.to_string(),
        json!({"description": "Success", "content": content(ok_schema)}),
    );
    responses.insert(
        "400".into(),
        error_response("Invalid input: the error names the field and the rule"),
    );
    if r.access != Access::Public {
        responses.insert(
            "401".into(),
            error_response("Missing, malformed, wrongly signed or expired token"),
        );
    }
    if r.access == Access::Admin {
        responses.insert("403".into(), error_response("The token lacks role admin"));
    }
    if r.path.contains('{') {
        responses.insert(
            "404".into(),
            error_response("No such webhook or delivery for this owner"),
        );
    }
    if r.path.ends_with("/retry") {
        responses.insert(
            "409".into(),
            error_response("The delivery is being sent right now"),
        );
    }
    if body.is_some() {
        responses.insert("413".into(), error_response("Request body over 1 MiB"));
        responses.insert(
            "415".into(),
            error_response("Request body is not application/json"),
        );
    }
    if r.path == "/api/events" {
        responses.insert(
            "413".into(),
            error_response("Request body or event payload over 1 MiB"),
        );
    }
    responses.insert("500".into(), error_response("Internal error (no details)"));
    let slug: String = format!("{} {}", r.method, r.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut op = json!({
        "operationId": slug.trim_matches('_').to_lowercase(),
        "summary": r.summary,
        "parameters": params,
        "responses": responses,
    });
    op["security"] = if r.access == Access::Public {
        json!([])
    } else {
        json!([{"bearerAuth": []}])
    };
    if let Some((schema, required)) = body {
        op["requestBody"] = json!({"required": required, "content": content(schema)});
    }
    op
}

fn schemas() -> Value {
    let ts = json!({"type": "string", "format": "date-time"});
    let ts_null = json!({"type": "string", "format": "date-time", "nullable": true});
    let uuid = json!({"type": "string", "format": "uuid"});
    let event_list = json!({"type": "array", "minItems": 1, "maxItems": v::EVENTS_MAX,
        "items": {"type": "string", "description": "a catalogue type, group.* or *"}});
    let headers = json!({"type": "object", "maxProperties": v::HEADERS_MAX,
        "additionalProperties": {"type": "string", "maxLength": v::HEADER_VALUE_MAX, "pattern": "^[\\t\\x20-\\x7e]*$"},
        "description": "custom headers; not content-type, user-agent, webhook-*, x-webhook-* or other reserved names"});
    let name = json!({"type": "string", "minLength": 1, "maxLength": v::NAME_MAX});
    let description = json!({"type": "string", "maxLength": v::DESCRIPTION_MAX, "nullable": true});
    let url = json!({"type": "string", "format": "uri", "maxLength": v::URL_MAX, "pattern": "^https?://"});
    let max_retries = json!({"type": "integer", "minimum": v::MAX_RETRIES.0, "maximum": v::MAX_RETRIES.1, "default": v::DEFAULT_MAX_RETRIES});
    let retry_delay = json!({"type": "integer", "minimum": v::RETRY_DELAY.0, "maximum": v::RETRY_DELAY.1, "default": v::DEFAULT_RETRY_DELAY, "description": "seconds before the first retry; doubles each retry"});
    let webhook_props = json!({
        "id": uuid, "name": {"type": "string"}, "description": {"type": "string", "nullable": true},
        "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "maxRetries": {"type": "integer"}, "retryDelay": {"type": "integer"},
        "active": {"type": "boolean"}, "verified": {"type": "boolean"},
        "disabledAt": ts_null, "disabledReason": {"type": "string", "nullable": true},
        "createdAt": ts, "updatedAt": ts
    });
    let webhook_required: Vec<&str> = vec![
        "id",
        "name",
        "description",
        "url",
        "events",
        "headers",
        "maxRetries",
        "retryDelay",
        "active",
        "verified",
        "disabledAt",
        "disabledReason",
        "createdAt",
        "updatedAt",
    ];
    let with = |extra: Value, extra_required: &[&str]| {
        let mut props = webhook_props.clone();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            props[k] = v;
        }
        let mut req = webhook_required.clone();
        req.extend_from_slice(extra_required);
        json!({"type": "object", "required": req, "properties": props})
    };
    json!({
        "Error": {
            "type": "object", "required": ["success", "error"],
            "properties": {
                "success": {"type": "boolean", "enum": [false]},
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "example": "VALIDATION_ERROR"},
                    "message": {"type": "string"},
                    "details": {"description": "e.g. [{field, message}] for validation errors"}
                }}
            }
        },
        "Pagination": {"type": "object", "required": ["page", "limit", "total", "totalPages"], "properties": {
            "page": {"type": "integer"}, "limit": {"type": "integer"},
            "total": {"type": "integer"}, "totalPages": {"type": "integer"}}},
        "Empty": {"type": "object", "additionalProperties": false, "description": "no body, or {}"},
        "EventType": {"type": "object", "required": ["type", "description"], "properties": {
            "type": {"type": "string"}, "description": {"type": "string"}}},
        "DeliveryStatus": {"type": "string", "enum": ["pending", "sending", "success", "failed", "retrying"]},
        "Webhook": with(json!({}), &[]),
        "WebhookWithSecret": with(json!({"secret": {"type": "string", "pattern": "^whsec_"}}), &["secret"]),
        "WebhookDetail": with(json!({"recentDeliveries": {"type": "array", "items": schema_ref("Delivery"), "maxItems": super::webhooks::RECENT_DELIVERIES}}), &["recentDeliveries"]),
        "WebhookCreate": {
            "type": "object", "additionalProperties": false, "required": ["name", "url", "events"],
            "properties": {"name": name, "description": description, "url": url, "events": event_list,
                "headers": headers, "maxRetries": max_retries, "retryDelay": retry_delay,
                "active": {"type": "boolean", "default": true}}
        },
        "WebhookUpdate": {
            "type": "object", "additionalProperties": false,
            "description": "any of the create fields; absent fields keep their value; active: true clears disabledAt",
            "properties": {"name": name, "description": description, "url": url, "events": event_list,
                "headers": headers, "maxRetries": max_retries, "retryDelay": retry_delay,
                "active": {"type": "boolean"}}
        },
        "Deleted": {"type": "object", "required": ["id", "deleted"], "properties": {"id": uuid, "deleted": {"type": "boolean"}}},
        "RotateRequest": {"type": "object", "additionalProperties": false, "properties": {
            "graceSeconds": {"type": "integer", "minimum": 0, "maximum": v::GRACE_MAX, "default": 0,
                "description": "the old secret keeps signing this long"}}},
        "RotateResult": {"type": "object", "required": ["id", "secret", "previousSecretExpiresAt"], "properties": {
            "id": uuid, "secret": {"type": "string", "pattern": "^whsec_"}, "previousSecretExpiresAt": ts_null}},
        "Delivery": {"type": "object", "required": ["id", "webhookId", "eventId", "eventType", "status", "attempts",
                "nextAttemptAt", "responseCode", "responseBody", "errorMessage", "createdAt", "updatedAt", "completedAt"],
            "properties": {"id": uuid, "webhookId": uuid, "eventId": uuid, "eventType": {"type": "string"},
                "status": schema_ref("DeliveryStatus"), "attempts": {"type": "integer"}, "nextAttemptAt": ts,
                "responseCode": {"type": "integer", "nullable": true}, "responseBody": {"type": "string", "nullable": true},
                "errorMessage": {"type": "string", "nullable": true}, "createdAt": ts, "updatedAt": ts, "completedAt": ts_null}},
        "TestResult": {"type": "object", "required": ["deliveryId", "eventId", "success", "statusCode", "durationMs", "error"],
            "properties": {"deliveryId": uuid, "eventId": uuid, "success": {"type": "boolean"},
                "statusCode": {"type": "integer", "nullable": true}, "durationMs": {"type": "integer"},
                "error": {"type": "string", "nullable": true}}},
        "WebhookStats": {"type": "object", "required": ["total", "success", "failed", "pending", "retrying", "successRate", "averageDurationMs", "lastDeliveryAt"],
            "properties": {"total": {"type": "integer"}, "success": {"type": "integer"}, "failed": {"type": "integer"},
                "pending": {"type": "integer"}, "retrying": {"type": "integer"},
                "successRate": {"type": "number", "nullable": true, "description": "percent of finished deliveries"},
                "averageDurationMs": {"type": "number", "nullable": true}, "lastDeliveryAt": ts_null}},
        "QueueStats": {"type": "object", "required": ["waiting", "active", "completed", "failed", "delayed", "paused", "isPaused"],
            "properties": {"waiting": {"type": "integer"}, "active": {"type": "integer"}, "completed": {"type": "integer"},
                "failed": {"type": "integer"}, "delayed": {"type": "integer"},
                "paused": {"type": "integer", "description": "due work held back by the pause"}, "isPaused": {"type": "boolean"}}},
        "PauseState": {"type": "object", "required": ["isPaused"], "properties": {"isPaused": {"type": "boolean"}}},
        "RetryFailedRequest": {"type": "object", "additionalProperties": false, "properties": {
            "webhookId": {"type": "string", "format": "uuid", "nullable": true,
                "description": "only this webhook's failed deliveries; absent or null: all"}}},
        "Count": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
        "PublishRequest": {"type": "object", "additionalProperties": false, "required": ["type", "data"], "properties": {
            "type": {"type": "string", "minLength": 1, "description": "a catalogue type"},
            "data": {"type": "object", "description": "the payload; at most 1 MiB"},
            "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": v::IDEMPOTENCY_KEY_MAX, "nullable": true}}},
        "PublishResult": {"type": "object", "required": ["id"], "properties": {"id": uuid}}
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation(r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Postbox API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Manage webhooks, read delivery history and statistics, control the queue. \
                 Bodies are JSON objects of at most {MAX_BODY} bytes; unknown fields are refused. \
                 Every answer is an envelope: {{\"success\": true, \"data\": ...}} or \
                 {{\"success\": false, \"error\": {{\"code\", \"message\", \"details\"}}}}."
            )
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256 JWT signed with POSTBOX_JWT_SECRET; sub = owner id; role: admin opens the queue routes"}},
            "schemas": schemas()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut listed = 0;
        for (path, ops) in paths {
            for (method, _) in ops.as_object().unwrap() {
                assert!(
                    ROUTES
                        .iter()
                        .any(|r| r.path == path && r.method.to_lowercase() == *method),
                    "{method} {path} is documented but not routed"
                );
                listed += 1;
            }
        }
        assert_eq!(listed, ROUTES.len());
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
    }
}
