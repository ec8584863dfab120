//! The delivery log (filters: status, event type, time; keyset paging), a
//! delivery's page (payload, every stored attempt) and its retry.
//!
//! The log reads windows of at most [`WINDOW`] deliveries from the cursor
//! on (`delivery_page_by_webhook`, index order) and keeps the rows that
//! pass the filters, up to [`WINDOWS`] windows per page: a page never costs
//! more than 2,000 index entries, whatever the history holds. When a rare
//! filter leaves the page short, it says how far it looked and offers to
//! look further.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use warp::http::StatusCode;

use super::{path_id, redirect, PageError, PageResult, Portal, Req, Session};
use crate::api::deliveries;
use crate::api::request::{AnyQuery, DeliveryPath, Input};
use crate::api::wire::Delivery;
use crate::store::{DeliveryStatus, DeliveryWindow};

/// Deliveries per page.
pub const PAGE: usize = 50;
/// Deliveries read per window.
pub const WINDOW: i64 = 500;
/// Windows read at most per page.
pub const WINDOWS: usize = 4;
/// Attempts shown on a delivery's page.
pub const ATTEMPTS: i64 = 50;

/// The time filter's choices: (value, label, hours).
pub const WITHIN: &[(&str, &str, i64)] = &[
    ("1h", "Last hour", 1),
    ("24h", "Last 24 hours", 24),
    ("7d", "Last 7 days", 24 * 7),
    ("30d", "Last 30 days", 24 * 30),
];

/// A cursor: `<created_at RFC 3339>_<id>`; rows strictly older come next.
pub fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (t, id) = raw.rsplit_once('_')?;
    let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
    Some((t, Uuid::parse_str(id).ok()?))
}

pub fn cursor(t: DateTime<Utc>, id: Uuid) -> String {
    format!(
        "{}_{id}",
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

impl Portal {
    /// `GET /portal/endpoints/{id}/deliveries?status&type&within&before`
    pub(super) async fn deliveries(&self, s: &Session, req: &Req, id: &str) -> PageResult {
        let id = path_id(id)?;
        let owner = &s.row.owner_id;
        let webhook = self.owned(s, id).await?;
        let q = &req.query;
        let status = match q.text("status") {
            None => None,
            Some(x) => Some(DeliveryStatus::parse(x).ok_or_else(|| {
                PageError::new(StatusCode::BAD_REQUEST, "status: not a delivery status")
            })?),
        };
        let event_type = q.text("type");
        if event_type.is_some_and(|t| t.len() > crate::api::validate::EVENT_TYPE_MAX) {
            return Err(PageError::new(StatusCode::BAD_REQUEST, "type: too long"));
        }
        // Postgres text cannot hold NUL: refused here, in our words.
        if event_type.is_some_and(|t| t.contains('\0')) {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "type: not an event type (it holds a NUL character)",
            ));
        }
        let within = q.text("within");
        let hours = match within {
            None => None,
            Some(w) => Some(
                WITHIN
                    .iter()
                    .find(|(v, _, _)| *v == w)
                    .map(|x| x.2)
                    .ok_or_else(|| {
                        PageError::new(
                            StatusCode::BAD_REQUEST,
                            "within: choose one of the listed ranges",
                        )
                    })?,
            ),
        };
        let now = self.api.clock.now();
        let since = hours.map(|h| now - chrono::Duration::hours(h));
        let start = match q.text("before") {
            None => (now + chrono::Duration::days(1), Uuid::max()),
            Some(c) => parse_cursor(c).ok_or_else(|| {
                PageError::new(StatusCode::BAD_REQUEST, "before: not a cursor of this log")
            })?,
        };
        let mut before = start;
        let mut rows: Vec<Delivery> = vec![];
        let mut scanned = 0usize;
        let mut more = false;
        for _ in 0..WINDOWS {
            let window = self
                .api
                .store
                .delivery_page_by_webhook(
                    id,
                    owner,
                    &DeliveryWindow {
                        before,
                        since,
                        size: WINDOW,
                        status,
                        event_type,
                    },
                )
                .await?;
            let full = window.len() as i64 == WINDOW;
            for r in window {
                scanned += 1;
                before = (r.delivery.created_at, r.delivery.id);
                if r.matches {
                    rows.push(r.delivery.into());
                    if rows.len() == PAGE {
                        break;
                    }
                }
            }
            if rows.len() == PAGE {
                more = true;
                break;
            }
            more = full;
            if !full {
                break;
            }
        }
        // A short page whose last window was full: more may match further back.
        let next = more.then(|| cursor(before.0, before.1));
        let catalogue = self.api.store.event_type_list().await?;
        let short = more && rows.len() < PAGE;
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "deliveries.html",
            ctx! {
                title => format!("Deliveries of {}", webhook.name),
                webhook => crate::api::wire::Webhook::from(webhook),
                next => next,
                first_page => q.text("before").is_none(),
                short => short,
                rows => rows,
                scanned => scanned,
                status => status.map(|x| x.as_str()),
                statuses => DeliveryStatus::ALL.map(DeliveryStatus::as_str),
                event_type => event_type,
                types => catalogue.into_iter().map(|t| t.name).collect::<Vec<_>>(),
                within => within,
                withins => WITHIN.iter().map(|(v, l, _)| (v, l)).collect::<Vec<_>>(),
            },
        ))
    }

    /// `GET /portal/endpoints/{id}/deliveries/{deliveryId}`
    pub(super) async fn delivery(&self, s: &Session, req: &Req, id: &str, did: &str) -> PageResult {
        let (id, did) = (path_id(id)?, path_id(did)?);
        let owner = &s.row.owner_id;
        let d = self
            .api
            .store
            .delivery_get(did, id, owner)
            .await?
            .ok_or_else(PageError::not_found)?;
        let event = self.api.store.event_get(d.event_id, owner).await?;
        let attempts = self
            .api
            .store
            .delivery_attempt_list(did, id, owner, ATTEMPTS, 0)
            .await?
            .map(|(page, _total)| page)
            .unwrap_or_default();
        let payload = event
            .as_ref()
            .map(|e| serde_json::to_string_pretty(&e.payload).unwrap_or_default());
        let webhook = self.owned(s, id).await?;
        let attempts: Vec<_> = attempts
            .into_iter()
            .map(|a| {
                ctx! {
                    attempt => a.attempt,
                    started_at => a.started_at,
                    duration_ms => a.duration_ms,
                    response_code => a.response_code,
                    response_body => a.response_body,
                    error_message => a.error_message,
                }
            })
            .collect();
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "delivery.html",
            ctx! {
                title => format!("Delivery {}", d.id),
                webhook => crate::api::wire::Webhook::from(webhook),
                delivery => Delivery::from(d),
                payload => payload,
                attempts => attempts,
                retried => req.query.get("retried").is_some(),
            },
        ))
    }

    /// `POST /portal/endpoints/{id}/deliveries/{deliveryId}/retry`: the API's retry.
    pub(super) async fn delivery_retry(&self, s: &Session, id: &str, did: &str) -> PageResult {
        let (webhook_id, delivery_id) = (path_id(id)?, path_id(did)?);
        deliveries::retry(
            &self.api,
            Input {
                caller: s.caller(),
                path: DeliveryPath {
                    webhook_id,
                    delivery_id,
                },
                query: AnyQuery,
                body: None,
            },
        )
        .await?;
        Ok(redirect(&format!(
            "/portal/endpoints/{webhook_id}/deliveries/{delivery_id}?retried=1"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let t = Utc::now();
        let id = Uuid::now_v7();
        let c = cursor(t, id);
        let (t2, id2) = parse_cursor(&c).unwrap();
        assert_eq!(id2, id);
        assert_eq!(t2.timestamp_micros(), t.timestamp_micros());
        for bad in [
            "",
            "x",
            "2026-01-01T00:00:00Z_nope",
            "nope_0191c1a0-0000-7000-8000-000000000000",
        ] {
            assert!(parse_cursor(bad).is_none(), "{bad}");
        }
    }
}
