//! The served OpenAPI document states what the server accepts: the limits
//! and patterns of `validate`, required fields, refused unknown fields, and
//! the live event catalogue as enums.

use serde_json::{json, Value};

use crate::api_support::*;

fn props<'a>(doc: &'a Value, schema: &str) -> &'a Value {
    &doc["components"]["schemas"][schema]["properties"]
}

#[tokio::test]
async fn the_document_states_the_rules_the_handlers_enforce() {
    let api = Api::start().await;
    let (s, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, 200);
    if let Ok(path) = std::env::var("POSTBOX_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Count",
        "Deleted",
        "Delivery",
        "DeliveryStatus",
        "Empty",
        "Error",
        "EventType",
        "Pagination",
        "PauseState",
        "PublishRequest",
        "PublishResult",
        "QueueStats",
        "RetryFailedRequest",
        "RotateRequest",
        "RotateResult",
        "TestResult",
        "Webhook",
        "WebhookCreate",
        "WebhookDetail",
        "WebhookStats",
        "WebhookUpdate",
        "WebhookWithSecret",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // Request bodies: unknown fields refused, required fields, limits.
    for name in [
        "WebhookCreate",
        "WebhookUpdate",
        "RotateRequest",
        "RetryFailedRequest",
        "PublishRequest",
        "Empty",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    assert_eq!(
        schemas["WebhookCreate"]["required"],
        json!(["name", "url", "events"])
    );
    assert!(schemas["WebhookUpdate"].get("required").is_none());
    assert_eq!(
        schemas["PublishRequest"]["required"],
        json!(["type", "data"])
    );
    for name in ["WebhookCreate", "WebhookUpdate"] {
        let p = props(&doc, name);
        assert_eq!(p["name"]["minLength"], 1);
        assert_eq!(p["name"]["maxLength"], 100);
        assert_eq!(p["description"]["maxLength"], 1000);
        assert_eq!(p["url"]["maxLength"], 2048);
        assert_eq!(p["url"]["pattern"], postbox::net::URL_PATTERN);
        assert_eq!(p["events"]["minItems"], 1);
        assert_eq!(p["events"]["maxItems"], 100);
        assert_eq!(p["headers"]["maxProperties"], 20);
        assert_eq!(p["headers"]["additionalProperties"]["maxLength"], 4096);
        assert_eq!(
            p["headers"]["additionalProperties"]["pattern"],
            "^[\\t\\x20-\\x7e]*$"
        );
        assert_eq!(
            (
                &p["maxRetries"]["minimum"],
                &p["maxRetries"]["maximum"],
                &p["maxRetries"]["default"]
            ),
            (&json!(0), &json!(10), &json!(3))
        );
        assert_eq!(
            (
                &p["retryDelay"]["minimum"],
                &p["retryDelay"]["maximum"],
                &p["retryDelay"]["default"]
            ),
            (&json!(10), &json!(3600), &json!(60))
        );
        // The live catalogue: every type, every group.*, and *.
        let subscriptions = p["events"]["items"]["enum"].as_array().unwrap();
        for s in ["project.created", "webhook.test", "project.*", "*"] {
            assert!(subscriptions.contains(&json!(s)), "{name}: {s}");
        }
    }
    assert_eq!(props(&doc, "WebhookCreate")["active"]["default"], true);
    let types = props(&doc, "PublishRequest")["type"]["enum"]
        .as_array()
        .unwrap();
    assert!(types.contains(&json!("project.created")) && !types.contains(&json!("*")));
    assert_eq!(
        props(&doc, "PublishRequest")["idempotencyKey"]["maxLength"],
        255
    );
    assert_eq!(
        props(&doc, "RotateRequest")["graceSeconds"]["maximum"],
        604800
    );
    assert_eq!(
        schemas["DeliveryStatus"]["enum"],
        json!([
            "pending",
            "sending",
            "success",
            "failed",
            "retrying",
            "held",
            "cancelled"
        ])
    );
    // Ordered delivery: the publish fields, the rule between them, the policy.
    assert_eq!(
        props(&doc, "PublishRequest")["orderingKey"]["maxLength"],
        256
    );
    assert_eq!(
        schemas["PublishRequest"]["then"]["required"],
        json!(["orderingKey"])
    );
    assert_eq!(
        props(&doc, "WebhookUpdate")["orderingPolicy"]["enum"],
        json!(["block", "skip_failed"])
    );
    assert_eq!(
        schemas["OrderingPolicy"]["enum"],
        json!(["block", "skip_failed"])
    );
    // Answers: every webhook field is present (nullable ones too); the
    // secret only where it is shown.
    let webhook_required = schemas["Webhook"]["required"].as_array().unwrap();
    for f in [
        "id",
        "description",
        "disabledAt",
        "disabledReason",
        "retryDelay",
        "updatedAt",
    ] {
        assert!(webhook_required.contains(&json!(f)), "Webhook.{f}");
    }
    assert!(schemas["Webhook"]["properties"].get("secret").is_none());
    assert!(doc.to_string().contains("^whsec_"));
    // Operations: status, access, parameters.
    let create = &doc["paths"]["/api/webhooks"]["post"];
    assert!(create["responses"].get("201").is_some());
    assert_eq!(create["requestBody"]["required"], true);
    assert!(create["responses"].get("415").is_some());
    let publish = &doc["paths"]["/api/events"]["post"];
    assert!(publish["responses"].get("202").is_some());
    let stats = &doc["paths"]["/api/webhooks/queue/stats"]["get"];
    assert!(stats["responses"].get("403").is_some());
    let openapi = &doc["paths"]["/api/openapi.json"]["get"];
    assert_eq!(openapi["security"], json!([]));
    assert!(openapi["responses"].get("401").is_none());
    let list = &doc["paths"]["/api/webhooks/{id}/deliveries"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "page", "limit", "status"]);
    let retry = &doc["paths"]["/api/webhooks/{id}/deliveries/{deliveryId}/retry"]["post"];
    assert!(retry["responses"].get("409").is_some());
    assert_eq!(retry["requestBody"]["required"], false);
}
