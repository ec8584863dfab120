//! The operator view (admin sessions only): queue stats, pause and resume
//! the queue, requeue failed deliveries, the event catalogue, and the
//! webhooks that are disabled or failing. The queue actions are the API's
//! admin handlers.

use warp::http::StatusCode;

use super::{redirect, PageError, PageResult, Portal, Req, Session};
use crate::api::queue;
use crate::api::request::{AnyQuery, NoBody, NoQuery};
use crate::api::webhooks;

/// Troubled webhooks listed at most.
const TROUBLED: i64 = 50;

impl Portal {
    fn admin_only(&self, s: &Session) -> Result<(), PageError> {
        if s.row.admin {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "The operator view needs an admin portal link.",
            ))
        }
    }

    /// `GET /portal/admin`
    pub(super) async fn admin(&self, s: &Session, req: &Req) -> PageResult {
        self.admin_only(s)?;
        let stats = queue::stats(&self.api, self.input(s, (), NoQuery, NoBody))
            .await?
            .0;
        let catalogue = webhooks::catalogue(&self.api, self.input(s, (), NoQuery, NoBody))
            .await?
            .items;
        let troubled = self.api.store.webhook_list_troubled(TROUBLED).await?;
        let troubled: Vec<_> = troubled
            .into_iter()
            .map(|t| {
                ctx! {
                    id => t.id, owner_id => t.owner_id, name => t.name, url => t.url,
                    disabled_at => t.disabled_at, disabled_reason => t.disabled_reason,
                    failing_since => t.failing_since,
                    consecutive_failures => t.consecutive_failures,
                    last_failure_at => t.last_failure_at,
                }
            })
            .collect();
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "admin.html",
            ctx! {
                title => "Operator view",
                stats => stats,
                catalogue => catalogue,
                troubled => troubled,
                done => req.query.get("done"),
                count => req.query.get("count"),
            },
        ))
    }

    /// `POST /portal/admin/{pause,resume,retry-failed}`
    pub(super) async fn admin_action(&self, s: &Session, _req: &Req, action: &str) -> PageResult {
        self.admin_only(s)?;
        match action {
            "pause" => {
                queue::pause(&self.api, self.input(s, (), AnyQuery, None)).await?;
                Ok(redirect("/portal/admin?done=paused"))
            }
            "resume" => {
                queue::resume(&self.api, self.input(s, (), AnyQuery, None)).await?;
                Ok(redirect("/portal/admin?done=resumed"))
            }
            "retry-failed" => {
                let n = queue::retry_failed(&self.api, self.input(s, (), AnyQuery, None))
                    .await?
                    .0
                    .count;
                Ok(redirect(&format!("/portal/admin?done=requeued&count={n}")))
            }
            _ => Err(PageError::not_found()),
        }
    }
}
