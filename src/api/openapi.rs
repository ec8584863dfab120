//! Each route's handler, and the OpenAPI 3.1 document derived from them.
//!
//! [`with_handler`] is the one table from [`Route`] to its handler. A
//! handler's signature says everything the document needs: its typed
//! [`Input`] (path ids, query, body) and its typed [`Answer`] (status and
//! `data` schema). The router visits the table to call the handler; this
//! module visits it to describe the route (utoipa builders, and schemas
//! derived with `ToSchema` on the wire types). The table, the router and the
//! document therefore cannot disagree: a new `Route` variant does not
//! compile until it has a handler here.
//!
//! One hand-written step stays: the served document adds the live event
//! catalogue as enums ([`with_catalogue`]), which no type can know.

use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Value};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, Paths, RefOr, Required,
    ResponseBuilder, Schema,
};

use super::reply::{reference, Answer, Document};
use super::request::{FromBody, FromPath, FromQuery, Input, NoBody, NoQuery};
use super::route::{Access, Route};
use super::wire::Empty;
use super::{
    deliveries, event_types, events, portal, queue, recovery, shaping, webhooks, ApiState,
};
use crate::web::body::MAX_BODY;
use crate::web::ApiError;

/// A route's handler: an `async fn(&ApiState, Input<P, Q, B>)` answering
/// a typed [`Answer`]. `Args` is `(P, Q, B)`; the types say what the route
/// takes and answers.
pub trait Handler<'a, Args>: Send + 'a {
    type Path: FromPath + Send + 'a;
    type Query: FromQuery + Send + 'a;
    type Body: FromBody + Send + 'a;
    type Answer: Answer + 'a;
    /// Calls the handler.
    fn call(
        self,
        state: &'a ApiState,
        input: Input<Self::Path, Self::Query, Self::Body>,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Answer, ApiError>> + Send + 'a>>;
}

impl<'a, P, Q, B, A, F, Fut> Handler<'a, (P, Q, B)> for F
where
    P: FromPath + Send + 'a,
    Q: FromQuery + Send + 'a,
    B: FromBody + Send + 'a,
    A: Answer + 'a,
    F: FnOnce(&'a ApiState, Input<P, Q, B>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<A, ApiError>> + Send + 'a,
{
    type Path = P;
    type Query = Q;
    type Body = B;
    type Answer = A;
    fn call(
        self,
        state: &'a ApiState,
        input: Input<P, Q, B>,
    ) -> Pin<Box<dyn Future<Output = Result<A, ApiError>> + Send + 'a>> {
        Box::pin(self(state, input))
    }
}

/// What visits a route's handler: the router (to call it) or the document
/// (to describe it).
pub trait Visit<'a> {
    type Out;
    fn visit<Args, H: Handler<'a, Args>>(self, handler: H) -> Self::Out;
}

/// The handler of each route.
pub fn with_handler<'a, V: Visit<'a>>(route: Route, v: V) -> V::Out {
    match route {
        Route::OpenApi => v.visit(get),
        Route::EventCatalogue => v.visit(webhooks::catalogue),
        Route::EventTypeCreate => v.visit(event_types::create),
        Route::EventTypeUpdate => v.visit(event_types::update),
        Route::EventTypeRetire => v.visit(event_types::retire),
        Route::QueueStats => v.visit(queue::stats),
        Route::QueuePause => v.visit(queue::pause),
        Route::QueueResume => v.visit(queue::resume),
        Route::QueueRetryFailed => v.visit(queue::retry_failed),
        Route::WebhookCreate => v.visit(webhooks::create),
        Route::WebhookList => v.visit(webhooks::list),
        Route::FilterTest => v.visit(shaping::filter_test),
        Route::TemplatePreview => v.visit(shaping::template_preview),
        Route::WebhookGet => v.visit(webhooks::get),
        Route::WebhookUpdate => v.visit(webhooks::update),
        Route::WebhookDelete => v.visit(webhooks::delete),
        Route::WebhookRotateSecret => v.visit(webhooks::regenerate_secret),
        Route::WebhookPause => v.visit(webhooks::pause),
        Route::WebhookResume => v.visit(webhooks::resume),
        Route::WebhookRecover => v.visit(recovery::recover),
        Route::WebhookReplay => v.visit(recovery::replay),
        Route::DeliveryList => v.visit(deliveries::list),
        Route::DeliveryRetry => v.visit(deliveries::retry),
        Route::DeliveryAttempts => v.visit(deliveries::attempts),
        Route::WebhookTest => v.visit(deliveries::test_send),
        Route::WebhookStats => v.visit(deliveries::stats),
        Route::EventPublish => v.visit(events::publish),
        Route::PortalSessionCreate => v.visit(portal::create),
    }
}

/// `GET /api/openapi.json`: the document with the live event catalogue as
/// enums, so that a generated client or a fuzzer knows exactly which types
/// are accepted.
pub async fn get(state: &ApiState, _: Input<(), NoQuery, NoBody>) -> Result<Document, ApiError> {
    let types: Vec<String> = state
        .store
        .event_type_list()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    Ok(Document(with_catalogue(document(), &types)))
}

/// `document()` with `types` as the enum of event types (publish) and of
/// subscriptions (each type, each `group.*`, and `*`; also a recover's or
/// replay's `eventTypes`).
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
    schemas["RangeRequest"]["properties"]["eventTypes"]["items"]["enum"] = json!(subscriptions);
    doc
}

type Schemas = Vec<(String, RefOr<Schema>)>;

/// Describes one route from its handler's types.
struct Describe<'s> {
    route: Route,
    schemas: &'s mut Schemas,
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            json_content(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Error"))),
        )
        .build()
}

impl<'a> Visit<'a> for Describe<'_> {
    type Out = Operation;
    fn visit<Args, H: Handler<'a, Args>>(self, _: H) -> Operation {
        let spec = self.route.spec();
        let slug: String = format!("{} {}", spec.method, spec.path)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut op = OperationBuilder::new()
            .operation_id(Some(slug.trim_matches('_').to_lowercase()))
            .summary(Some(spec.summary));
        for name in <H::Path as FromPath>::NAMES {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(<H::Path as FromPath>::schema(name))),
            );
        }
        for p in <H::Query as FromQuery>::parameters() {
            op = op.parameter(p);
        }
        let body = <H::Body as FromBody>::request_body(self.schemas);
        let has_body = body.is_some();
        if let Some((schema, required)) = body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(if required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .content("application/json", json_content(schema))
                    .build(),
            ));
        }
        op = op.response(
            <H::Answer as Answer>::STATUS.to_string(),
            ResponseBuilder::new().description("Success").content(
                "application/json",
                json_content(<H::Answer as Answer>::schema(self.schemas)),
            ),
        );
        op = op.response(
            "400",
            error("Invalid input: the error names the field and the rule"),
        );
        if spec.access != Access::Public {
            op = op.response(
                "401",
                error("Missing, malformed, wrongly signed or expired token"),
            );
        }
        if spec.access == Access::Admin {
            op = op.response("403", error("The token lacks role admin"));
        }
        if <H::Path as FromPath>::NAMES == ["type"] {
            op = op.response("404", error("No open event type of that name"));
        } else if !<H::Path as FromPath>::NAMES.is_empty() {
            op = op.response("404", error("No such webhook or delivery for this owner"));
        }
        if has_body {
            op = op.response("413", error("Request body over 1 MiB"));
        }
        // The route's own answers last: one of a status above replaces it.
        for (status, description) in spec.errors {
            op = op.response(*status, error(description));
        }
        if has_body {
            op = op.response("415", error("Request body is not application/json"));
        }
        op = op.response("500", error("Internal error (no details)"));
        op = op.securities(Some(if spec.access == Access::Public {
            vec![]
        } else {
            vec![SecurityRequirement::new("bearerAuth", Vec::<String>::new())]
        }));
        op.build()
    }
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "HEAD" => HttpMethod::Head,
        "OPTIONS" => HttpMethod::Options,
        _ => HttpMethod::Trace,
    }
}

/// The error envelope's schema (`web::envelope::ApiError` serialises by hand).
fn error_schema() -> Value {
    json!({
        "type": "object", "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [false]},
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                "message": {"type": "string"},
                "details": {"description": "e.g. [{field, message}] for validation errors"}
            }}
        }
    })
}

/// The whole document, without the live catalogue.
pub fn document() -> Value {
    let mut schemas: Schemas = vec![];
    reference::<Empty>(&mut schemas);
    let mut paths = Paths::new();
    for route in Route::ALL {
        let op = with_handler(
            *route,
            Describe {
                route: *route,
                schemas: &mut schemas,
            },
        );
        let spec = route.spec();
        paths.add_path_operation(spec.path, vec![method(spec.method)], op);
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 JWT signed with POSTBOX_JWT_SECRET; sub = owner id; role: admin opens the queue routes",
                    ))
                    .build(),
            ),
        )
        .build();
    let info = InfoBuilder::new()
        .title("Postbox API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(format!(
            "Manage webhooks, read delivery history and statistics, control the queue. \
             Bodies are JSON objects of at most {MAX_BODY} bytes; unknown fields are refused. \
             Every answer is an envelope: {{\"success\": true, \"data\": ...}} or \
             {{\"success\": false, \"error\": {{\"code\", \"message\", \"details\"}}}}."
        )))
        .build();
    let api = OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(components))
        .build();
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    doc["components"]["schemas"]["Error"] = error_schema();
    doc["components"]["schemas"]["JsonValue"] = super::validate::json_value_schema();
    // A rule between two fields, which utoipa's builders cannot state.
    let publish = &mut doc["components"]["schemas"]["PublishRequest"];
    publish["if"] = super::validate::supersede_condition();
    publish["then"] = super::validate::supersede_needs_key();
    doc
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
                    Route::ALL.iter().any(|r| r.spec().path == path
                        && r.spec().method.to_lowercase() == *method),
                    "{method} {path} is documented but not routed"
                );
                listed += 1;
            }
        }
        assert_eq!(listed, Route::ALL.len());
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

    /// Visits a handler for the names its typed path parameters read.
    struct PathNames;

    impl<'a> Visit<'a> for PathNames {
        type Out = &'static [&'static str];
        fn visit<Args, H: Handler<'a, Args>>(self, _: H) -> Self::Out {
            <H::Path as FromPath>::NAMES
        }
    }

    #[test]
    fn each_handler_reads_the_path_parameters_its_template_names() {
        for route in Route::ALL {
            let template = route.spec().path;
            assert_eq!(
                with_handler(*route, PathNames),
                crate::api::route::template_names(template).as_slice(),
                "{route:?} {template}"
            );
        }
    }

    #[test]
    fn a_route_s_own_errors_are_in_the_document() {
        let doc = document();
        let retry = &doc["paths"]["/api/webhooks/{id}/deliveries/{deliveryId}/retry"]["post"];
        assert!(retry["responses"].get("409").is_some(), "{retry}");
        let publish = &doc["paths"]["/api/events"]["post"]["responses"]["413"];
        assert_eq!(
            publish["description"],
            "Request body or event payload over 1 MiB"
        );
        let create = &doc["paths"]["/api/webhooks"]["post"]["responses"];
        assert_eq!(create["413"]["description"], "Request body over 1 MiB");
        assert!(create.get("409").is_none());
    }
}
