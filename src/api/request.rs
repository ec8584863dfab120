//! What a handler gets from a request. The router reads the body (capped,
//! see `web::body`) and authenticates the caller into a [`Ctx`]; a handler
//! declares the typed [`Input`] it takes, and `Input::from_ctx` extracts it
//! in a fixed order: path ids, then the query, then the JSON body, each
//! refusal a 400 (415 for a body that is not JSON) naming the field. The
//! same types describe the route in the OpenAPI document (`openapi`).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;
use warp::http::{HeaderMap, StatusCode};

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Required, Schema};
use utoipa::ToSchema;

use super::auth::Caller;
use super::reply::reference;
use super::validate as v;
use crate::store::DeliveryStatus;
use crate::web::errors::unsupported_media_type;
use crate::web::ApiError;

/// One authenticated request, before its typed extraction.
pub struct Ctx {
    pub caller: Caller,
    /// Path parameters in template order (`{id}`, `{deliveryId}`), raw.
    pub params: Vec<String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A handler's typed input: the caller, path parameters `P`, query `Q` and
/// body `B`.
pub struct Input<P, Q, B> {
    pub caller: Caller,
    pub path: P,
    pub query: Q,
    pub body: B,
}

impl<P: FromPath, Q: FromQuery, B: FromBody> Input<P, Q, B> {
    /// Extracts path ids, then the query, then the body.
    pub fn from_ctx(ctx: Ctx) -> Result<Self, ApiError> {
        let path = P::from_params(&ctx.params)?;
        let query = Q::from_query(ctx.query.as_deref())?;
        let body = B::from_body(&ctx.headers, &ctx.body)?;
        Ok(Input {
            caller: ctx.caller,
            path,
            query,
            body,
        })
    }
}

/// Typed path parameters; `NAMES` are the template's `{names}` in order.
pub trait FromPath: Sized {
    const NAMES: &'static [&'static str];
    fn from_params(params: &[String]) -> Result<Self, ApiError>;

    /// The schema of parameter `name` in the OpenAPI document: a UUID in
    /// its canonical form unless the type says otherwise.
    fn schema(_name: &str) -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Uuid,
                )))
                .build(),
        ))
    }
}

/// `{type}`: an event type name, by the catalogue's naming rule.
pub struct EventTypeName(pub String);

impl FromPath for EventTypeName {
    const NAMES: &'static [&'static str] = &["type"];
    fn from_params(params: &[String]) -> Result<Self, ApiError> {
        let raw = params.first().map(String::as_str).unwrap_or("");
        // Path segments arrive percent-encoded; a name never needs encoding.
        v::event_type_name("type", raw).map(EventTypeName)
    }
    fn schema(_name: &str) -> RefOr<Schema> {
        RefOr::T(Schema::Object(v::event_type_name_schema().build()))
    }
}

/// A route without path parameters.
impl FromPath for () {
    const NAMES: &'static [&'static str] = &[];
    fn from_params(_: &[String]) -> Result<Self, ApiError> {
        Ok(())
    }
}

/// `{id}`: a webhook id.
pub struct WebhookId(pub Uuid);

impl FromPath for WebhookId {
    const NAMES: &'static [&'static str] = &["id"];
    fn from_params(params: &[String]) -> Result<Self, ApiError> {
        param(params, 0, "id").map(WebhookId)
    }
}

/// `{id}` and `{deliveryId}`: a delivery of a webhook.
pub struct DeliveryPath {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
}

impl FromPath for DeliveryPath {
    const NAMES: &'static [&'static str] = &["id", "deliveryId"];
    fn from_params(params: &[String]) -> Result<Self, ApiError> {
        Ok(DeliveryPath {
            webhook_id: param(params, 0, "id")?,
            delivery_id: param(params, 1, "deliveryId")?,
        })
    }
}

fn param(params: &[String], i: usize, name: &str) -> Result<Uuid, ApiError> {
    parse_uuid(name, params.get(i).map(String::as_str).unwrap_or(""))
}

/// A UUID in the canonical hyphenated form (what the API itself prints);
/// anything else is a 400 naming `name`.
pub fn parse_uuid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    if raw.len() != 36 {
        return Err(ApiError::validation(name, "must be a UUID"));
    }
    Uuid::parse_str(raw).map_err(|_| ApiError::validation(name, "must be a UUID"))
}

/// Typed query parameters; `ALLOWED` are the names accepted (`None`: the
/// query is not read at all, as on every route that changes something).
pub trait FromQuery: Sized {
    const ALLOWED: Option<&'static [&'static str]>;
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ApiError>;

    /// The parameters as the OpenAPI document lists them.
    fn parameters() -> Vec<Parameter> {
        vec![]
    }

    /// Parses `query`, refusing any name outside `ALLOWED`.
    fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let (Some(allowed), Some(q)) = (Self::ALLOWED, query) else {
            return Self::from_pairs(vec![]);
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            let hint = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("unknown query parameter; allowed: {}", allowed.join(", "))
            };
            return Err(ApiError::validation(k, hint));
        }
        Self::from_pairs(pairs)
    }
}

/// The query is not read (routes that change something).
pub struct AnyQuery;

impl FromQuery for AnyQuery {
    const ALLOWED: Option<&'static [&'static str]> = None;
    fn from_pairs(_: Vec<(String, String)>) -> Result<Self, ApiError> {
        Ok(AnyQuery)
    }
}

/// No query parameter is accepted.
pub struct NoQuery;

impl FromQuery for NoQuery {
    const ALLOWED: Option<&'static [&'static str]> = Some(&[]);
    fn from_pairs(_: Vec<(String, String)>) -> Result<Self, ApiError> {
        Ok(NoQuery)
    }
}

/// `page` (1 to `PAGE_MAX`, default 1) and `limit` (1 to `LIMIT_MAX`,
/// default `DEFAULT_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub limit: i64,
}

impl Page {
    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.limit
    }

    fn set(&mut self, k: &str, value: &str) -> Result<(), ApiError> {
        let (slot, max) = match k {
            "page" => (&mut self.page, v::PAGE_MAX),
            _ => (&mut self.limit, v::LIMIT_MAX),
        };
        *slot = value
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::validation(k, format!("must be an integer from 1 to {max}"))
            })?;
        Ok(())
    }
}

impl Default for Page {
    fn default() -> Page {
        Page {
            page: 1,
            limit: v::DEFAULT_LIMIT,
        }
    }
}

fn query_param(name: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .schema(Some(schema))
        .build()
}

fn bounded(max: i64, default: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(max))
        .default(Some(serde_json::json!(default)))
}

impl FromQuery for Page {
    const ALLOWED: Option<&'static [&'static str]> = Some(&["page", "limit"]);
    fn parameters() -> Vec<Parameter> {
        vec![
            query_param("page", bounded(v::PAGE_MAX, 1)),
            query_param("limit", bounded(v::LIMIT_MAX, v::DEFAULT_LIMIT)),
        ]
    }
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut p = Page::default();
        for (k, value) in pairs {
            p.set(&k, &value)?;
        }
        Ok(p)
    }
}

/// A page of deliveries, optionally only those in one `status`.
pub struct DeliveryQuery {
    pub page: Page,
    pub status: Option<DeliveryStatus>,
}

impl FromQuery for DeliveryQuery {
    const ALLOWED: Option<&'static [&'static str]> = Some(&["page", "limit", "status"]);
    fn parameters() -> Vec<Parameter> {
        let mut params = Page::parameters();
        params.push(query_param(
            "status",
            RefOr::Ref(Ref::from_schema_name("DeliveryStatus")),
        ));
        params
    }
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut q = DeliveryQuery {
            page: Page::default(),
            status: None,
        };
        for (k, value) in pairs {
            if k == "status" {
                q.status = Some(DeliveryStatus::parse(&value).ok_or_else(|| {
                    let all = DeliveryStatus::ALL.map(DeliveryStatus::as_str);
                    ApiError::validation("status", format!("must be one of {}", all.join(", ")))
                })?);
            } else {
                q.page.set(&k, &value)?;
            }
        }
        Ok(q)
    }
}

/// A typed request body.
pub trait FromBody: Sized {
    fn from_body(headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError>;

    /// The body's schema (registered in `schemas`) and whether it is
    /// required, as the OpenAPI document states it; `None`: no body.
    fn request_body(_schemas: &mut Vec<(String, RefOr<Schema>)>) -> Option<(RefOr<Schema>, bool)> {
        None
    }
}

/// The body is not read (routes that take none).
pub struct NoBody;

impl FromBody for NoBody {
    fn from_body(_: &HeaderMap, _: &Bytes) -> Result<Self, ApiError> {
        Ok(NoBody)
    }
}

/// A required JSON object body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + ToSchema> FromBody for Json<T> {
    fn request_body(schemas: &mut Vec<(String, RefOr<Schema>)>) -> Option<(RefOr<Schema>, bool)> {
        Some((reference::<T>(schemas), true))
    }
    fn from_body(headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError> {
        Option::<Json<T>>::from_body(headers, body)?
            .ok_or_else(|| ApiError::validation("body", "a JSON object is required"))
    }
}

/// An optional JSON object body: empty (or only white space) is `None`.
impl<T: DeserializeOwned + ToSchema> FromBody for Option<Json<T>> {
    fn request_body(schemas: &mut Vec<(String, RefOr<Schema>)>) -> Option<(RefOr<Schema>, bool)> {
        Some((reference::<T>(schemas), false))
    }
    fn from_body(headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !is_json(headers) {
            return Err(unsupported_media_type());
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::validation("body", "must be a JSON object"));
        }
        // The path names the field; an unknown field is named by serde's
        // message (`unknown field `x`, expected ...`), at the top level.
        serde_path_to_error::deserialize(value)
            .map(|t| Some(Json(t)))
            .map_err(|e| {
                let msg = e.inner().to_string();
                let path = e.path().to_string();
                let field = match msg.split('`').nth(1) {
                    Some(unknown) if msg.starts_with("unknown field") => unknown.to_string(),
                    _ if path != "." => path,
                    _ => "body".to_string(),
                };
                ApiError::validation(&field, msg)
            })
    }
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body field as raw JSON: absent is `None`, present (even `null`) is
/// `Some`. The validators in `validate` turn it into its type, so that a
/// refusal names the field and the rule in a fixed order.
pub type Field = Option<serde_json::Value>;

/// `deserialize_with` for `Field`: keeps an explicit `null` as `Some(Null)`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}
