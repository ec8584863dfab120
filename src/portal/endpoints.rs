//! Endpoint pages: the list with health at a glance, create, edit, delete,
//! rotate the secret (shown once), and an endpoint's page with its charts
//! and recent failures. Every change goes through the API's own handler
//! with the session's caller.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use warp::http::StatusCode;

use super::endpoint_form::{groups, FormValues};
use super::{path_id, redirect, PageError, PageResult, Portal, Req, Session};
use crate::api::request::{AnyQuery, DeliveryQuery, Input, Json, NoBody, NoQuery, Page, WebhookId};
use crate::api::webhooks;
use crate::api::wire::{EventType, RotateRequest, Webhook, WebhookCreate};
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
        let values = FormValues::new_endpoint();
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
    pub(super) async fn endpoint(&self, s: &Session, req: &Req, id: &str) -> PageResult {
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
                recovered => req.query.get("recovered").and_then(|n| n.parse::<i64>().ok()),
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

    /// `POST /portal/endpoints/{id}/pause` and `/resume`: the API's pause
    /// and resume (deliveries held with their budget, then sent in order of
    /// due time).
    pub(super) async fn endpoint_pause(&self, s: &Session, id: &str, paused: bool) -> PageResult {
        let id = path_id(id)?;
        let input = self.input(s, WebhookId(id), AnyQuery, None);
        if paused {
            webhooks::pause(&self.api, input).await?;
        } else {
            webhooks::resume(&self.api, input).await?;
        }
        Ok(redirect(&format!("/portal/endpoints/{id}")))
    }

    /// `POST /portal/endpoints/{id}/recover`: the API's recover for the
    /// failed deliveries whose events were created in the last `hours`
    /// (1-720; a range chosen from now, so no time zone is involved).
    pub(super) async fn endpoint_recover(&self, s: &Session, req: &Req, id: &str) -> PageResult {
        let id = path_id(id)?;
        let hours = req
            .form
            .text("hours")
            .and_then(|h| h.trim().parse::<i64>().ok())
            .filter(|h| (1..=720).contains(h))
            .ok_or_else(|| {
                ApiError::validation("hours", "a whole number of hours from 1 to 720")
            })?;
        let since = chrono::Utc::now() - chrono::TimeDelta::hours(hours);
        let body = crate::api::wire::RangeRequest {
            since: Some(Value::String(since.to_rfc3339())),
            until: None,
            event_types: None,
        };
        let accepted = crate::api::recovery::recover(
            &self.api,
            self.input(s, WebhookId(id), AnyQuery, Json(body)),
        )
        .await?;
        Ok(redirect(&format!(
            "/portal/endpoints/{id}?recovered={}",
            accepted.0.count
        )))
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

    fn webhook(active: bool, disabled: bool) -> Webhook {
        let now = chrono::Utc::now();
        Webhook {
            id: uuid::Uuid::nil(),
            name: "w".into(),
            description: None,
            url: "https://h.example/".into(),
            events: vec!["*".into()],
            headers: serde_json::json!({}),
            max_retries: 3,
            retry_delay: 60,
            active,
            verified: false,
            disabled_at: disabled.then_some(now),
            disabled_reason: None,
            created_at: now,
            updated_at: now,
            filter: None,
            template: None,
            batch: None,
            paused: false,
            rate_limit: None,
            max_in_flight: None,
            retry_schedule: None,
            ordering_policy: crate::api::wire::OrderingPolicy::Block,
            breaker: crate::api::wire::Breaker {
                state: crate::api::wire::BreakerState::Closed,
                since: None,
                reason: None,
            },
        }
    }

    fn health(success: i64, retrying: i64, failing: bool) -> WebhookHealthRow {
        WebhookHealthRow {
            webhook_id: uuid::Uuid::nil(),
            total: success + retrying,
            success,
            failed: 0,
            pending: 0,
            retrying,
            success_rate: None,
            last_delivery_at: None,
            last_success_at: None,
            last_failure_at: None,
            failing_since: failing.then(chrono::Utc::now),
            consecutive_failures: 0,
        }
    }

    #[test]
    fn health_at_a_glance_is_the_worst_that_applies() {
        let h = |w: &Webhook, r: Option<&WebhookHealthRow>| Health::of(w, r);
        assert_eq!(h(&webhook(true, true), None), Health::Disabled);
        assert_eq!(h(&webhook(false, false), None), Health::Inactive);
        assert_eq!(
            h(&webhook(true, false), Some(&health(5, 0, true))),
            Health::Failing
        );
        assert_eq!(
            h(&webhook(true, false), Some(&health(5, 1, false))),
            Health::Failing
        );
        assert_eq!(
            h(&webhook(true, false), Some(&health(5, 0, false))),
            Health::Healthy
        );
        assert_eq!(
            h(&webhook(true, false), Some(&health(0, 0, false))),
            Health::Idle
        );
        assert_eq!(h(&webhook(true, false), None), Health::Idle);
    }
}
