//! The API's statements on `postbox.deliveries`: a webhook's history, one
//! delivery, the manual retries and the test send. Every statement that
//! takes an id is scoped to its owner too, so another owner's id finds
//! nothing. (The dispatcher's statements on the same table are elsewhere.)

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{ClaimedDelivery, DeliveryStatus, Store, StoreError};

/// A row of `postbox.deliveries` with its event's type, as the history shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub response_code: Option<i32>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn from_row(r: &Row) -> DeliveryRow {
        DeliveryRow {
            id: r.get("id"),
            webhook_id: r.get("webhook_id"),
            event_id: r.get("event_id"),
            event_type: r.get("event_type"),
            status: r.get("status"),
            attempts: r.get("attempts"),
            next_attempt_at: r.get("next_attempt_at"),
            response_code: r.get("response_code"),
            response_body: r.get("response_body"),
            error_message: r.get("error_message"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            completed_at: r.get("completed_at"),
        }
    }
}

/// What `delivery_retry` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    NotFound,
    /// The delivery is being sent right now.
    InFlight,
    Requeued,
}

impl Store {
    /// One page of a webhook's deliveries, newest first, and the total.
    pub async fn delivery_list_by_webhook(
        &self,
        webhook_id: Uuid,
        owner: &str,
        status: Option<DeliveryStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
        let rows = self
            .rows(
                statement!("delivery_list_by_webhook"),
                &[&webhook_id, &owner, &status, &limit, &offset],
            )
            .await?;
        let total: i64 = self
            .row(
                statement!("delivery_count_by_webhook"),
                &[&webhook_id, &owner, &status],
            )
            .await?
            .get(0);
        Ok((rows.iter().map(DeliveryRow::from_row).collect(), total))
    }

    pub async fn delivery_get(
        &self,
        id: Uuid,
        webhook_id: Uuid,
        owner: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let row = self
            .row_opt(statement!("delivery_get"), &[&id, &webhook_id, &owner])
            .await?;
        Ok(row.as_ref().map(DeliveryRow::from_row))
    }

    pub async fn delivery_retry(
        &self,
        id: Uuid,
        webhook_id: Uuid,
        owner: &str,
    ) -> Result<RetryOutcome, StoreError> {
        let row = self
            .row_opt(statement!("delivery_retry"), &[&id, &webhook_id, &owner])
            .await?;
        Ok(match row {
            None => RetryOutcome::NotFound,
            Some(r) if r.get::<_, bool>("requeued") => RetryOutcome::Requeued,
            Some(_) => RetryOutcome::InFlight,
        })
    }

    /// Requeues failed deliveries (of one webhook, or all) in batches of 5,000 (each its own
    /// transaction) until a short batch; returns how many in all.
    pub async fn delivery_retry_failed_many(
        &self,
        webhook_id: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        const BATCH: i64 = 5_000;
        let mut total = 0;
        loop {
            // Two statements, each on its own index: one with an optional
            // webhook filter would get a generic plan that walks every
            // dead letter.
            let n = match webhook_id {
                Some(id) => {
                    self.exec(
                        statement!("delivery_retry_failed_by_webhook"),
                        &[&id, &BATCH],
                    )
                    .await?
                }
                None => {
                    self.exec(statement!("delivery_retry_failed_many"), &[&BATCH])
                        .await?
                }
            };
            total += n;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Creates a `webhook.test` event and its one delivery, already claimed
    /// (attempt 1, leased until `now + lease`). `None` when the owner has no
    /// such webhook.
    pub async fn delivery_test_create(
        &self,
        webhook_id: Uuid,
        owner: &str,
        payload: &serde_json::Value,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<ClaimedDelivery>, StoreError> {
        let lease_secs = lease.as_secs_f64();
        let row = self
            .row_opt(
                statement!("delivery_test_create"),
                &[&webhook_id, &owner, payload, &now, &lease_secs],
            )
            .await?;
        Ok(row.map(|r| super::claimed_from_row(&r, r.get("attempts"), r.get("active"))))
    }
}
