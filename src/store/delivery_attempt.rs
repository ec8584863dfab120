//! Statements on `postbox.delivery_attempts`, the audit trail of every
//! attempt (written by `delivery_complete_many` and the lease rescue).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

/// One recorded attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// 1 for the first attempt, then 2, 3, ... (the `x-webhook-attempt` header).
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// Milliseconds from the request's start to its outcome.
    pub duration_ms: i32,
    /// The response status, when a response arrived.
    pub response_code: Option<i32>,
    /// The first 16 KiB of the response body.
    pub response_body: Option<String>,
    pub error_message: Option<String>,
}

impl Store {
    /// One page of the attempts of the owner's webhook's delivery, newest
    /// first, and how many there are in all; `None` when the owner's
    /// webhook has no such delivery.
    pub async fn delivery_attempt_list(
        &self,
        delivery_id: Uuid,
        webhook_id: Uuid,
        owner: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Option<(Vec<AttemptRow>, i64)>, StoreError> {
        let rows = self
            .rows(
                statement!("delivery_attempt_list"),
                &[&delivery_id, &webhook_id, &owner, &limit, &offset],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let total: i64 = first.get("total");
        let page = rows
            .iter()
            .filter_map(|r| {
                Some(AttemptRow {
                    attempt: r.get::<_, Option<i32>>("attempt")?,
                    started_at: r.get("started_at"),
                    duration_ms: r.get("duration_ms"),
                    response_code: r.get("response_code"),
                    response_body: r.get("response_body"),
                    error_message: r.get("error_message"),
                })
            })
            .collect();
        Ok(Some((page, total)))
    }
}
