//! Endpoint pages: the list with health at a glance, create, edit, delete,
//! rotate the secret (shown once), and an endpoint's page with its charts
//! and recent failures. Every change goes through the API's own handler
//! with the session's caller.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Map, Value};
use warp::http::StatusCode;

use super::{path_id, redirect, PageError, PageResult, Portal, Req, Session};
use crate::api::request::{AnyQuery, DeliveryQuery, Input, Json, NoBody, NoQuery, Page, WebhookId};
use crate::api::webhooks;
use crate::api::wire::{EventType, RotateRequest, Webhook, WebhookBody, WebhookCreate};
use crate::store::{DeliveryStatus, WebhookHealthRow};
use crate::web::ApiError;

/// Endpoints per page of the list.
const PAGE_SIZE: i64 = 50;
/// Failed deliveries on an endpoint's page.
const RECENT_FAILURES: i64 = 10;
/// Hours the charts cover.
pub const CHART_HOURS: i64 = 24;

/// An endpoint as the list shows it.
#[derive(Serialize)]
struct Row {
    webhook: Webhook,
    health: Health,
    success_rate: Option<f64>,
    pending: i64,
    retrying: i64,
    failed: i64,
    last_delivery_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Health at a glance, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Disabled,
    Inactive,
    Failing,
    Healthy,
    Idle,
}

impl Health {
    /// From the webhook's flags and its rolled-up outcomes.
    pub fn of(w: &Webhook, h: Option<&WebhookHealthRow>) -> Health {
        if w.disabled_at.is_some() {
            return Health::Disabled;
        }
        if !w.active {
            return Health::Inactive;
        }
        match h {
            Some(h) if h.failing_since.is_some() || h.retrying > 0 => Health::Failing,
            Some(h) if h.success + h.failed > 0 => Health::Healthy,
            _ => Health::Idle,
        }
    }
}

/// The form's values as typed, to show them again after a refusal.
#[derive(Serialize, Default)]
struct FormValues {
    name: String,
    url: String,
    description: String,
    events: Vec<String>,
    headers: String,
    max_retries: String,
    retry_delay: String,
    active: bool,
}

impl FormValues {
    fn from_webhook(w: &Webhook) -> FormValues {
        FormValues {
            name: w.name.clone(),
            url: w.url.clone(),
            description: w.description.clone().unwrap_or_default(),
            events: w.events.clone(),
            headers: w
                .headers
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            max_retries: w.max_retries.to_string(),
            retry_delay: w.retry_delay.to_string(),
            active: w.active,
        }
    }

    fn from_form(req: &Req) -> FormValues {
        let f = &req.form;
        FormValues {
            name: f.get("name").unwrap_or("").to_string(),
            url: f.get("url").unwrap_or("").trim().to_string(),
            description: f.get("description").unwrap_or("").to_string(),
            events: f.all("events").into_iter().map(str::to_string).collect(),
            headers: f.get("headers").unwrap_or("").to_string(),
            max_retries: f.get("max_retries").unwrap_or("").to_string(),
            retry_delay: f.get("retry_delay").unwrap_or("").to_string(),
            active: f.get("active").is_some(),
        }
    }

    /// The API body these values make: numbers as JSON numbers when they
    /// are numbers (else the API names the field), blank numbers left out.
    fn body(&self) -> Result<WebhookBody, ApiError> {
        // Blank: left out (the API's default on create, unchanged on edit).
        let number = |s: &str| -> Option<Value> {
            let s = s.trim();
            (!s.is_empty()).then(|| {
                serde_json::from_str::<serde_json::Number>(s)
                    .map(Value::Number)
                    .unwrap_or_else(|_| Value::String(s.to_string()))
            })
        };
        Ok(WebhookBody {
            name: Some(Value::String(self.name.clone())),
            url: Some(Value::String(self.url.clone())),
            description: Some(if self.description.trim().is_empty() {
                Value::Null
            } else {
                Value::String(self.description.clone())
            }),
            events: Some(json!(self.events)),
            headers: Some(parse_headers(&self.headers)?),
            max_retries: number(&self.max_retries),
            retry_delay: number(&self.retry_delay),
            active: Some(Value::Bool(self.active)),
        })
    }
}

/// `Name: value` lines into the API's headers object.
fn parse_headers(text: &str) -> Result<Value, ApiError> {
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ApiError::validation(
                "headers",
                format!("each line is Name: value; {line:?} has no colon"),
            ));
        };
        map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Ok(Value::Object(map))
}

/// The catalogue grouped for the picker: each group's `group.*` and types.
#[derive(Serialize)]
struct Group {
    name: String,
    pattern: String,
    types: Vec<EventType>,
}

fn groups(catalogue: Vec<EventType>) -> Vec<Group> {
    let mut out: Vec<Group> = vec![];
    for t in catalogue {
        let g = t
            .name
            .split_once('.')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        match out.iter_mut().find(|x| x.name == g) {
            Some(x) => x.types.push(t),
            None => out.push(Group {
                pattern: format!("{g}.*"),
                name: g,
                types: vec![t],
            }),
        }
    }
    out
}

impl Portal {
    pub(super) fn input<P, Q, B>(&self, s: &Session, path: P, query: Q, body: B) -> Input<P, Q, B> {
        Input {
            caller: s.caller(),
            path,
            query,
            body,
        }
    }

    /// The session owner's webhook `id` (no secrets, no deliveries), or the 404 page.
    pub(super) async fn owned(
        &self,
        s: &Session,
        id: uuid::Uuid,
    ) -> Result<crate::store::WebhookRow, PageError> {
        self.api
            .store
            .webhook_get(id, &s.row.owner_id)
            .await?
            .ok_or_else(PageError::not_found)
    }

    async fn catalogue(&self, s: &Session) -> Result<Vec<EventType>, PageError> {
        Ok(
            webhooks::catalogue(&self.api, self.input(s, (), NoQuery, NoBody))
                .await?
                .items,
        )
    }

    /// `GET /portal/`
    pub(super) async fn endpoints(&self, s: &Session, req: &Req) -> PageResult {
        let page_no = req
            .query
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| (1..=10_000).contains(p))
            .unwrap_or(1);
        let listed = webhooks::list(
            &self.api,
            self.input(
                s,
                (),
                Page {
                    page: page_no,
                    limit: PAGE_SIZE,
                },
                NoBody,
            ),
        )
        .await?;
        let ids: Vec<uuid::Uuid> = listed.items.iter().map(|w| w.id).collect();
        let health: HashMap<uuid::Uuid, WebhookHealthRow> = self
            .api
            .store
            .webhook_health_many(&ids, &s.row.owner_id)
            .await?
            .into_iter()
            .map(|h| (h.webhook_id, h))
            .collect();
        let rows: Vec<Row> = listed
            .items
            .into_iter()
            .map(|w| {
                let h = health.get(&w.id);
                Row {
                    health: Health::of(&w, h),
                    success_rate: h.and_then(|h| h.success_rate),
                    pending: h.map_or(0, |h| h.pending),
                    retrying: h.map_or(0, |h| h.retrying),
                    failed: h.map_or(0, |h| h.failed),
                    last_delivery_at: h.and_then(|h| h.last_delivery_at),
                    webhook: w,
                }
            })
            .collect();
        let p = listed.pagination;
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "endpoints.html",
            ctx! {
                title => "Endpoints",
                rows => rows,
                page => p.page,
                total_pages => p.total_pages,
                total => p.total,
                deleted => req.query.get("deleted").is_some(),
            },
        ))
    }

    async fn form_page(
        &self,
        s: &Session,
        status: StatusCode,
        id: Option<uuid::Uuid>,
        values: FormValues,
        error: Option<ApiError>,
    ) -> PageResult {
        let catalogue = self.catalogue(s).await?;
        let field = error
            .as_ref()
            .and_then(|e| e.details.as_ref())
            .and_then(|d| d[0]["field"].as_str())
            .map(str::to_string);
        Ok(self.page(
            status,
            Some(s),
            "endpoint_form.html",
            ctx! {
                title => if id.is_some() { "Edit endpoint" } else { "New endpoint" },
                id => id,
                values => values,
                groups => groups(catalogue),
                error => error.map(|e| e.message),
                error_field => field,
            },
        ))
    }

    /// `GET /portal/endpoints/new`
    pub(super) async fn endpoint_new(&self, s: &Session) -> PageResult {
        let values = FormValues {
            max_retries: crate::api::validate::DEFAULT_MAX_RETRIES.to_string(),
            retry_delay: crate::api::validate::DEFAULT_RETRY_DELAY.to_string(),
            active: true,
            ..FormValues::default()
        };
        self.form_page(s, StatusCode::OK, None, values, None).await
    }

    /// `POST /portal/endpoints`: the API's create; the secret is shown once.
    pub(super) async fn endpoint_create(&self, s: &Session, req: &Req) -> PageResult {
        let values = FormValues::from_form(req);
        let created = match values.body() {
            Ok(body) => {
                webhooks::create(
                    &self.api,
                    self.input(s, (), AnyQuery, Json(WebhookCreate(body))),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match created {
            Ok(c) => {
                let c = c.0;
                Ok(self.page(
                    StatusCode::CREATED,
                    Some(s),
                    "secret.html",
                    ctx! {
                        title => "Endpoint created",
                        webhook => c.webhook,
                        secret => c.secret,
                        previous_expires_at => Option::<String>::None,
                        created => true,
                    },
                ))
            }
            Err(e) if e.status.is_client_error() => {
                self.form_page(s, e.status, None, values, Some(e)).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /portal/endpoints/{id}`
    pub(super) async fn endpoint(&self, s: &Session, _req: &Req, id: &str) -> PageResult {
        let id = path_id(id)?;
        let detail = webhooks::get(&self.api, self.input(s, WebhookId(id), NoQuery, NoBody))
            .await?
            .0;
        let stats =
            crate::api::deliveries::stats(&self.api, self.input(s, WebhookId(id), NoQuery, NoBody))
                .await?
                .0;
        let failures = crate::api::deliveries::list(
            &self.api,
            self.input(
                s,
                WebhookId(id),
                DeliveryQuery {
                    page: Page {
                        page: 1,
                        limit: RECENT_FAILURES,
                    },
                    status: Some(DeliveryStatus::Failed),
                },
                NoBody,
            ),
        )
        .await?
        .items;
        let now = self.api.clock.now();
        let since = super::chart::hour_start(now) - chrono::Duration::hours(CHART_HOURS - 1);
        let hourly = self
            .api
            .store
            .webhook_hourly_stats(id, &s.row.owner_id, since)
            .await?;
        let charts = super::chart::Charts::build(&hourly, since, CHART_HOURS as usize);
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "endpoint.html",
            ctx! {
                title => detail.webhook.name.clone(),
                webhook => detail.webhook,
                recent => detail.recent_deliveries,
                stats => stats,
                failures => failures,
                charts => charts,
                chart_hours => CHART_HOURS,
            },
        ))
    }

    /// `GET /portal/endpoints/{id}/edit`
    pub(super) async fn endpoint_edit(&self, s: &Session, id: &str) -> PageResult {
        let id = path_id(id)?;
        let w = Webhook::from(self.owned(s, id).await?);
        self.form_page(
            s,
            StatusCode::OK,
            Some(id),
            FormValues::from_webhook(&w),
            None,
        )
        .await
    }

    /// `POST /portal/endpoints/{id}/edit`: the API's update.
    pub(super) async fn endpoint_update(&self, s: &Session, req: &Req, id: &str) -> PageResult {
        let id = path_id(id)?;
        // Another owner's id is a 404 before any field is looked at.
        self.owned(s, id).await?;
        let values = FormValues::from_form(req);
        let updated = match values.body() {
            Ok(body) => {
                webhooks::update(
                    &self.api,
                    self.input(s, WebhookId(id), AnyQuery, Json(body)),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match updated {
            Ok(_) => Ok(redirect(&format!("/portal/endpoints/{id}"))),
            Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
                self.form_page(s, e.status, Some(id), values, Some(e)).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /portal/endpoints/{id}/delete`: the API's delete.
    pub(super) async fn endpoint_delete(&self, s: &Session, id: &str) -> PageResult {
        let id = path_id(id)?;
        webhooks::delete(&self.api, self.input(s, WebhookId(id), AnyQuery, NoBody)).await?;
        Ok(redirect("/portal/?deleted=1"))
    }

    /// `POST /portal/endpoints/{id}/rotate`: the API's regenerate-secret,
    /// with the grace period chosen; the new secret is shown once.
    pub(super) async fn endpoint_rotate(&self, s: &Session, req: &Req, id: &str) -> PageResult {
        let id = path_id(id)?;
        let grace = req.form.text("grace_seconds").map(|g| {
            serde_json::from_str::<serde_json::Number>(g)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(g.to_string()))
        });
        let body = RotateRequest {
            grace_seconds: grace,
        };
        let rotated = webhooks::regenerate_secret(
            &self.api,
            self.input(s, WebhookId(id), AnyQuery, Some(Json(body))),
        )
        .await?
        .0;
        let webhook = Webhook::from(self.owned(s, id).await?);
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "secret.html",
            ctx! {
                title => "Secret rotated",
                webhook => webhook,
                secret => rotated.secret,
                previous_expires_at => rotated.previous_secret_expires_at,
                created => false,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_become_an_object_and_bad_lines_name_the_field() {
        assert_eq!(
            parse_headers("X-A: 1\n\n  X-B :two words ").unwrap(),
            json!({"X-A": "1", "X-B": "two words"})
        );
        let e = parse_headers("nocolon").unwrap_err();
        assert!(e.message.starts_with("headers:"), "{}", e.message);
    }

    #[test]
    fn the_catalogue_groups_by_prefix() {
        let t = |n: &str| EventType {
            name: n.into(),
            description: String::new(),
        };
        let g = groups(vec![t("a.x"), t("b.y"), t("a.z")]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].pattern, "a.*");
        assert_eq!(g[0].types.len(), 2);
    }
}
