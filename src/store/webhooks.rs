//! Statements for the management API: webhooks, their deliveries and stats,
//! the event catalogue and queue administration. Every statement that takes
//! an id is scoped to its owner too, so another owner's id finds nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{db, ClaimedDelivery, DeliveryStatus, Store, StoreError};

/// A webhook as the API shows it: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub headers: serde_json::Value,
    pub max_retries: i32,
    /// Seconds before the first retry (`retry_delay_seconds`).
    pub retry_delay: i32,
    pub active: bool,
    pub verified: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    fn from_row(r: &Row) -> Webhook {
        Webhook {
            id: r.get("id"),
            name: r.get("name"),
            description: r.get("description"),
            url: r.get("url"),
            events: r.get("event_types"),
            headers: r.get("headers"),
            max_retries: r.get("max_retries"),
            retry_delay: r.get("retry_delay_seconds"),
            active: r.get("active"),
            verified: r.get("verified"),
            disabled_at: r.get("disabled_at"),
            disabled_reason: r.get("disabled_reason"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        }
    }
}

/// The fields of a new webhook, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub owner_id: String,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub headers: serde_json::Value,
    pub max_retries: i32,
    pub retry_delay_seconds: i32,
    pub active: bool,
}

/// A partial update: `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub headers: Option<serde_json::Value>,
    pub max_retries: Option<i32>,
    pub retry_delay_seconds: Option<i32>,
    pub active: Option<bool>,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
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

impl Delivery {
    fn from_row(r: &Row) -> Delivery {
        Delivery {
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

/// Per-webhook totals (view `postbox.webhook_stats`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    pub total: i64,
    pub success: i64,
    pub failed: i64,
    pub pending: i64,
    pub retrying: i64,
    /// Percent of finished deliveries that succeeded; null before any finished.
    pub success_rate: Option<f64>,
    pub average_duration_ms: Option<f64>,
    pub last_delivery_at: Option<DateTime<Utc>>,
}

/// Queue-wide counts (view `postbox.queue_stats`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
    pub delayed: i64,
    /// Due work held back by the pause.
    pub paused: i64,
    pub is_paused: bool,
}

/// One catalogue entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventType {
    #[serde(rename = "type")]
    pub name: String,
    pub description: String,
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
    pub async fn webhook_insert(&self, w: &NewWebhook) -> Result<Webhook, StoreError> {
        let row = self
            .row(
                statement!("webhook_insert"),
                &[
                    &w.owner_id,
                    &w.name,
                    &w.description,
                    &w.url,
                    &w.secret,
                    &w.events,
                    &w.headers,
                    &w.max_retries,
                    &w.retry_delay_seconds,
                    &w.active,
                ],
            )
            .await?;
        Ok(Webhook::from_row(&row))
    }

    pub async fn webhook_get(&self, id: Uuid, owner: &str) -> Result<Option<Webhook>, StoreError> {
        let row = self
            .row_opt(statement!("webhook_get"), &[&id, &owner])
            .await?;
        Ok(row.as_ref().map(Webhook::from_row))
    }

    /// One page of the owner's webhooks, and how many there are in all.
    pub async fn webhook_list(
        &self,
        owner: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Webhook>, i64), StoreError> {
        let client = self.client().await?;
        let list = statement!("webhook_list").prepare(&client).await?;
        let count = statement!("webhook_count").prepare(&client).await?;
        let rows = client
            .query(&list, &[&owner, &limit, &offset])
            .await
            .map_err(db("webhook_list"))?;
        let total: i64 = client
            .query_one(&count, &[&owner])
            .await
            .map_err(db("webhook_count"))?
            .get(0);
        Ok((rows.iter().map(Webhook::from_row).collect(), total))
    }

    pub async fn webhook_update(
        &self,
        id: Uuid,
        owner: &str,
        p: &WebhookPatch,
    ) -> Result<Option<Webhook>, StoreError> {
        let client = self.client().await?;
        let stmt = statement!("webhook_update").prepare(&client).await?;
        let description_given = p.description.is_some();
        let description = p.description.clone().flatten();
        let row = client
            .query_opt(
                &stmt,
                &[
                    &id,
                    &owner,
                    &p.name,
                    &description_given,
                    &description,
                    &p.url,
                    &p.events,
                    &p.headers,
                    &p.max_retries,
                    &p.retry_delay_seconds,
                    &p.active,
                ],
            )
            .await
            .map_err(db("webhook_update"))?;
        Ok(row.as_ref().map(Webhook::from_row))
    }

    /// True when the owner's webhook existed and is gone.
    pub async fn webhook_delete(&self, id: Uuid, owner: &str) -> Result<bool, StoreError> {
        let n = self
            .exec(statement!("webhook_delete"), &[&id, &owner])
            .await?;
        Ok(n > 0)
    }

    /// Installs `secret`; the old one keeps signing for `grace_seconds`.
    /// `None` when the owner has no such webhook; otherwise when the old
    /// secret stops signing (`Some(None)`: it already has).
    pub async fn webhook_rotate_secret(
        &self,
        id: Uuid,
        owner: &str,
        secret: &str,
        grace_seconds: i32,
    ) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
        let row = self
            .row_opt(
                statement!("webhook_rotate_secret"),
                &[&id, &owner, &secret, &grace_seconds],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn webhook_stats_get(
        &self,
        id: Uuid,
        owner: &str,
    ) -> Result<Option<WebhookStats>, StoreError> {
        let row = self
            .row_opt(statement!("webhook_stats_get"), &[&id, &owner])
            .await?;
        Ok(row.map(|r| WebhookStats {
            total: r.get("total"),
            success: r.get("success"),
            failed: r.get("failed"),
            pending: r.get("pending"),
            retrying: r.get("retrying"),
            success_rate: r.get("success_rate"),
            average_duration_ms: r.get("average_duration_ms"),
            last_delivery_at: r.get("last_delivery_at"),
        }))
    }

    pub async fn event_type_list(&self) -> Result<Vec<EventType>, StoreError> {
        let rows = self.rows(statement!("event_type_list"), &[]).await?;
        Ok(rows
            .iter()
            .map(|r| EventType {
                name: r.get("name"),
                description: r.get("description"),
            })
            .collect())
    }

    /// One page of a webhook's deliveries, newest first, and the total.
    pub async fn delivery_list_by_webhook(
        &self,
        webhook_id: Uuid,
        owner: &str,
        status: Option<DeliveryStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Delivery>, i64), StoreError> {
        let client = self.client().await?;
        let list = statement!("delivery_list_by_webhook")
            .prepare(&client)
            .await?;
        let count = statement!("delivery_count_by_webhook")
            .prepare(&client)
            .await?;
        let rows = client
            .query(&list, &[&webhook_id, &owner, &status, &limit, &offset])
            .await
            .map_err(db("delivery_list_by_webhook"))?;
        let total: i64 = client
            .query_one(&count, &[&webhook_id, &owner, &status])
            .await
            .map_err(db("delivery_count_by_webhook"))?
            .get(0);
        Ok((rows.iter().map(Delivery::from_row).collect(), total))
    }

    pub async fn delivery_get(
        &self,
        id: Uuid,
        webhook_id: Uuid,
        owner: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = self
            .row_opt(statement!("delivery_get"), &[&id, &webhook_id, &owner])
            .await?;
        Ok(row.as_ref().map(Delivery::from_row))
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

    /// Requeues failed deliveries (of one webhook, or all); returns how many.
    /// Requeues failed deliveries in batches of 5,000 (each its own
    /// transaction) until a short batch; returns how many in all.
    pub async fn delivery_retry_failed_many(
        &self,
        webhook_id: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        const BATCH: i64 = 5_000;
        let mut total = 0;
        loop {
            let n = self
                .exec(
                    statement!("delivery_retry_failed_many"),
                    &[&webhook_id, &BATCH],
                )
                .await?;
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
        let client = self.client().await?;
        let stmt = statement!("delivery_test_create").prepare(&client).await?;
        let lease_secs = lease.as_secs_f64();
        let row = client
            .query_opt(&stmt, &[&webhook_id, &owner, payload, &now, &lease_secs])
            .await
            .map_err(db("delivery_test_create"))?;
        Ok(row.map(|r| super::claimed_from_row(&r, r.get("attempts"), r.get("active"))))
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let r = self.row(statement!("queue_stats"), &[]).await?;
        Ok(QueueStats {
            waiting: r.get("waiting"),
            active: r.get("active"),
            completed: r.get("completed"),
            failed: r.get("failed"),
            delayed: r.get("delayed"),
            paused: r.get("paused"),
            is_paused: r.get("is_paused"),
        })
    }

    pub async fn queue_pause(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_pause"), &[]).await.map(|_| ())
    }

    pub async fn queue_resume(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_resume"), &[]).await.map(|_| ())
    }

    /// NOTIFY postbox_wakeup: idle dispatchers look for work now.
    pub async fn queue_wakeup(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_wakeup"), &[]).await.map(|_| ())
    }
}
