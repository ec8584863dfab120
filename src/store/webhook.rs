//! Statements on `postbox.webhooks` (and its stats view) and the event
//! catalogue `postbox.event_types`, with their plain row types. Every
//! statement that takes an id is scoped to its owner too, so another
//! owner's id finds nothing.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Store, StoreError};

/// A row of `postbox.webhooks`, without the secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub event_types: Vec<String>,
    pub headers: serde_json::Value,
    pub max_retries: i32,
    /// Seconds before the first retry.
    pub retry_delay_seconds: i32,
    pub active: bool,
    pub verified: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Deliveries held (not claimed, budget kept) while true.
    pub paused: bool,
    /// Requests per second across all dispatchers; `None`: no limit.
    pub rate_limit: Option<i32>,
    /// Requests in flight across all dispatchers; `None`: the dispatcher's
    /// per-endpoint cap.
    pub max_in_flight: Option<i32>,
    /// Seconds before each retry; replaces `max_retries`/`retry_delay_seconds`.
    pub retry_schedule: Option<Vec<i32>>,
    /// The circuit breaker (`postbox.webhook_state`).
    pub breaker: BreakerRow,
    /// The payload filter (`{"contains", "path"}`), if any.
    pub filter: Option<serde_json::Value>,
    /// The body template, if any.
    pub template: Option<serde_json::Value>,
    /// The batch settings (`{"maxEvents", "maxWaitMs"}`), if any.
    pub batch: Option<serde_json::Value>,
    /// What a failing delivery of an ordering key does to its successors.
    pub ordering_policy: OrderingPolicy,
}

/// `postbox.webhooks.ordering_policy`: what a failing delivery of an
/// ordering key does to the later ones of its key (docs/WEBHOOKS.md,
/// "Ordered delivery").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OrderingPolicy {
    /// The failing delivery holds its key's successors until it is
    /// delivered, dead-lettered or cancelled.
    #[default]
    Block,
    /// A failed attempt lets the next go at once; the failed delivery
    /// retries on its own schedule, out of line.
    SkipFailed,
}

impl OrderingPolicy {
    /// Every policy, the default first.
    pub const ALL: [OrderingPolicy; 2] = [OrderingPolicy::Block, OrderingPolicy::SkipFailed];

    /// The column's value (the table's CHECK allows exactly these).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderingPolicy::Block => "block",
            OrderingPolicy::SkipFailed => "skip_failed",
        }
    }

    /// The policy whose value is `s`.
    pub fn parse(s: &str) -> Option<OrderingPolicy> {
        OrderingPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A webhook's circuit breaker: `closed`, `open` or `half_open`, since when
/// and why (`None` while it never opened).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerRow {
    pub state: String,
    pub since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl WebhookRow {
    fn from_row(r: &Row) -> WebhookRow {
        WebhookRow {
            id: r.get("id"),
            name: r.get("name"),
            description: r.get("description"),
            url: r.get("url"),
            event_types: r.get("event_types"),
            headers: r.get("headers"),
            max_retries: r.get("max_retries"),
            retry_delay_seconds: r.get("retry_delay_seconds"),
            active: r.get("active"),
            verified: r.get("verified"),
            disabled_at: r.get("disabled_at"),
            disabled_reason: r.get("disabled_reason"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            paused: r.get("paused"),
            rate_limit: r.get("rate_limit"),
            max_in_flight: r.get("max_in_flight"),
            retry_schedule: r.get("retry_schedule"),
            breaker: BreakerRow {
                state: r.get("breaker_state"),
                since: r.get("breaker_since"),
                reason: r.get("breaker_reason"),
            },
            filter: r.get("filter"),
            template: r.get("template"),
            batch: r.get("batch"),
            // The column's CHECK admits the two values only.
            ordering_policy: OrderingPolicy::parse(r.get("ordering_policy")).unwrap_or_default(),
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
    pub paused: bool,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub retry_schedule: Option<Vec<i32>>,
    /// Checked by the caller (`api::validate`); the table's CHECK again.
    pub filter: Option<serde_json::Value>,
    pub template: Option<serde_json::Value>,
    pub batch: Option<serde_json::Value>,
    pub ordering_policy: OrderingPolicy,
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
    pub paused: Option<bool>,
    /// `Some(None)` clears the limit.
    pub rate_limit: Option<Option<i32>>,
    /// `Some(None)` clears the limit.
    pub max_in_flight: Option<Option<i32>>,
    /// `Some(None)` clears the schedule (back to `max_retries`/`retry_delay`).
    pub retry_schedule: Option<Option<Vec<i32>>>,
    /// `Some(None)` clears the filter; likewise `template` and `batch`.
    pub filter: Option<Option<serde_json::Value>>,
    pub template: Option<Option<serde_json::Value>>,
    pub batch: Option<Option<serde_json::Value>>,
    pub ordering_policy: Option<OrderingPolicy>,
}

/// A stored event and whether a filter matches its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterMatch {
    pub event_id: Uuid,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub matches: bool,
}

/// Per-webhook totals (view `postbox.webhook_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookStatsRow {
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

impl Store {
    /// Creates the webhook; the row as stored.
    pub async fn webhook_insert(&self, w: &NewWebhook) -> Result<WebhookRow, StoreError> {
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
                    &w.paused,
                    &w.rate_limit,
                    &w.max_in_flight,
                    &w.retry_schedule,
                    &w.filter,
                    &w.template,
                    &w.batch,
                    &w.ordering_policy.as_str(),
                ],
            )
            .await?;
        Ok(WebhookRow::from_row(&row))
    }

    /// The owner's webhook; `None` when the owner has no such one.
    pub async fn webhook_get(
        &self,
        id: Uuid,
        owner: &str,
    ) -> Result<Option<WebhookRow>, StoreError> {
        let row = self
            .row_opt(statement!("webhook_get"), &[&id, &owner])
            .await?;
        Ok(row.as_ref().map(WebhookRow::from_row))
    }

    /// One page of the owner's webhooks, and how many there are in all.
    pub async fn webhook_list(
        &self,
        owner: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<WebhookRow>, i64), StoreError> {
        let rows = self
            .rows(statement!("webhook_list"), &[&owner, &limit, &offset])
            .await?;
        let total: i64 = self
            .row(statement!("webhook_count"), &[&owner])
            .await?
            .get(0);
        Ok((rows.iter().map(WebhookRow::from_row).collect(), total))
    }

    /// Applies the present fields of `p`; the row after, or `None` when
    /// the owner has no such webhook.
    pub async fn webhook_update(
        &self,
        id: Uuid,
        owner: &str,
        p: &WebhookPatch,
    ) -> Result<Option<WebhookRow>, StoreError> {
        let description_given = p.description.is_some();
        let description = p.description.clone().flatten();
        let rate_given = p.rate_limit.is_some();
        let rate = p.rate_limit.flatten();
        let in_flight_given = p.max_in_flight.is_some();
        let in_flight = p.max_in_flight.flatten();
        let schedule_given = p.retry_schedule.is_some();
        let schedule = p.retry_schedule.clone().flatten();
        let given = |f: &Option<Option<serde_json::Value>>| (f.is_some(), f.clone().flatten());
        let (filter_given, filter) = given(&p.filter);
        let (template_given, template) = given(&p.template);
        let (batch_given, batch) = given(&p.batch);
        let ordering_policy = p.ordering_policy.map(OrderingPolicy::as_str);
        let row = self
            .row_opt(
                statement!("webhook_update"),
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
                    &p.paused,
                    &rate_given,
                    &rate,
                    &in_flight_given,
                    &in_flight,
                    &schedule_given,
                    &schedule,
                    &filter_given,
                    &filter,
                    &template_given,
                    &template,
                    &batch_given,
                    &batch,
                    &ordering_policy,
                ],
            )
            .await?;
        Ok(row.as_ref().map(WebhookRow::from_row))
    }

    /// Holds (`paused`) or releases the owner's webhook's deliveries; the
    /// row after, or `None` when the owner has no such webhook.
    pub async fn webhook_pause(
        &self,
        id: Uuid,
        owner: &str,
        paused: bool,
    ) -> Result<Option<WebhookRow>, StoreError> {
        let row = self
            .row_opt(statement!("webhook_pause"), &[&id, &owner, &paused])
            .await?;
        Ok(row.as_ref().map(WebhookRow::from_row))
    }

    /// Why `filter` is not a valid webhook filter, or `None` when it is
    /// (`postbox.webhook_filter_problem`: shape, path syntax, path is a
    /// predicate; Postgres parses the path, as the fan-out will).
    pub async fn webhook_filter_problem(
        &self,
        filter: &serde_json::Value,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .row(statement!("webhook_filter_problem"), &[filter])
            .await?
            .get(0))
    }

    /// Whether `payload` matches `filter` (a valid one), exactly as the
    /// fan-out decides it.
    pub async fn webhook_filter_test(
        &self,
        filter: &serde_json::Value,
        payload: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        Ok(self
            .row(statement!("webhook_filter_test"), &[filter, payload])
            .await?
            .get(0))
    }

    /// The events of the webhook's `limit` newest deliveries, newest first,
    /// each with whether it matches `filter` (a valid one); empty when the
    /// owner has no such webhook or it has no deliveries.
    pub async fn webhook_filter_test_recent(
        &self,
        filter: &serde_json::Value,
        webhook_id: Uuid,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<FilterMatch>, StoreError> {
        let rows = self
            .rows(
                statement!("webhook_filter_test_recent"),
                &[filter, &webhook_id, &owner, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| FilterMatch {
                event_id: r.get("event_id"),
                event_type: r.get("event_type"),
                created_at: r.get("created_at"),
                matches: r.get("matches"),
            })
            .collect())
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

    /// The webhook's delivery statistics; `None` when the owner has no such one.
    pub async fn webhook_stats_get(
        &self,
        id: Uuid,
        owner: &str,
    ) -> Result<Option<WebhookStatsRow>, StoreError> {
        let row = self
            .row_opt(statement!("webhook_stats_get"), &[&id, &owner])
            .await?;
        Ok(row.map(|r| WebhookStatsRow {
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

    /// Registers the webhook `id` for `owner`, or re-points and re-enables
    /// that owner's (see the SQL file); returns its secret, `None` when the
    /// id belongs to another owner.
    pub async fn webhook_upsert(
        &self,
        id: Uuid,
        owner: &str,
        name: &str,
        url: &str,
        events: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .row_opt(
                statement!("webhook_upsert"),
                &[&id, &owner, &name, &url, &events, &now],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

impl Store {
    /// Disables one webhook now with `reason`; false when it was already
    /// disabled (or is not there). The dispatcher's answer to 410 Gone.
    pub async fn webhook_disable(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(statement!("webhook_disable"), &[&id, &reason, &now])
            .await?;
        Ok(n > 0)
    }

    /// Disables the webhooks failing since before `cutoff` without success;
    /// returns their ids. See `sql/webhook_disable_failing.sql` for the rule.
    pub async fn webhook_disable_failing(
        &self,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .rows(
                statement!("webhook_disable_failing"),
                &[&now, &cutoff, &reason],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Deletes up to `limit` recorded subscription changes that no event
    /// waiting for fan-out needs any more; returns how many went. Call it
    /// until it returns less than `limit` (a maintenance job).
    pub async fn webhook_subscription_change_prune(&self, limit: i64) -> Result<u64, StoreError> {
        self.exec(statement!("webhook_subscription_change_prune"), &[&limit])
            .await
    }
}

/// A webhook's health at a glance (`sql/webhook_health_many.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookHealthRow {
    pub webhook_id: Uuid,
    pub total: i64,
    pub success: i64,
    pub failed: i64,
    pub pending: i64,
    pub retrying: i64,
    /// Percent of finished deliveries that succeeded; null before any finished.
    pub success_rate: Option<f64>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// As of the latest maintenance roll-up.
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The first failed attempt since the last success; `None` when none.
    pub failing_since: Option<DateTime<Utc>>,
    pub consecutive_failures: i64,
}

/// One hour of a webhook's chart data (`sql/webhook_hourly_stats.sql`).
#[derive(Debug, Clone, PartialEq)]
pub enum HourlyRow {
    /// Deliveries created in `hour` that are now in `status`.
    Count {
        hour: DateTime<Utc>,
        status: String,
        n: i64,
    },
    /// Attempts started in `hour` (of the 1,000 newest deliveries).
    Latency {
        hour: DateTime<Utc>,
        attempts: i64,
        mean_ms: f64,
        max_ms: i32,
    },
}

/// A disabled or failing webhook of any owner (the operator view).
#[derive(Debug, Clone, PartialEq)]
pub struct TroubledWebhookRow {
    pub id: Uuid,
    pub owner_id: String,
    pub name: String,
    pub url: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub consecutive_failures: i64,
    pub last_failure_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Health at a glance of the owner's webhooks among `ids` (another
    /// owner's are left out), in no particular order.
    pub async fn webhook_health_many(
        &self,
        ids: &[Uuid],
        owner: &str,
    ) -> Result<Vec<WebhookHealthRow>, StoreError> {
        let rows = self
            .rows(statement!("webhook_health_many"), &[&ids, &owner])
            .await?;
        Ok(rows
            .iter()
            .map(|r| WebhookHealthRow {
                webhook_id: r.get("webhook_id"),
                total: r.get("total"),
                success: r.get("success"),
                failed: r.get("failed"),
                pending: r.get("pending"),
                retrying: r.get("retrying"),
                success_rate: r.get("success_rate"),
                last_delivery_at: r.get("last_delivery_at"),
                last_success_at: r.get("last_success_at"),
                last_failure_at: r.get("last_failure_at"),
                failing_since: r.get("failing_since"),
                consecutive_failures: r.get("consecutive_failures"),
            })
            .collect())
    }

    /// The owner's webhook's deliveries per hour and status, and its
    /// attempts' latency per hour, since `since`, oldest first; empty for
    /// another owner's webhook.
    pub async fn webhook_hourly_stats(
        &self,
        id: Uuid,
        owner: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<HourlyRow>, StoreError> {
        let rows = self
            .rows(statement!("webhook_hourly_stats"), &[&id, &owner, &since])
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let hour = r.get("hour");
                if r.get::<_, &str>("kind") == "count" {
                    HourlyRow::Count {
                        hour,
                        status: r.get("status"),
                        n: r.get("n"),
                    }
                } else {
                    HourlyRow::Latency {
                        hour,
                        attempts: r.get("n"),
                        mean_ms: r.get("mean_ms"),
                        max_ms: r.get("max_ms"),
                    }
                }
            })
            .collect())
    }

    /// Up to `limit` disabled or failing webhooks of every owner, the
    /// longest-troubled first (admin only: the caller checks).
    pub async fn webhook_list_troubled(
        &self,
        limit: i64,
    ) -> Result<Vec<TroubledWebhookRow>, StoreError> {
        let rows = self
            .rows(statement!("webhook_list_troubled"), &[&limit])
            .await?;
        Ok(rows
            .iter()
            .map(|r| TroubledWebhookRow {
                id: r.get("id"),
                owner_id: r.get("owner_id"),
                name: r.get("name"),
                url: r.get("url"),
                disabled_at: r.get("disabled_at"),
                disabled_reason: r.get("disabled_reason"),
                failing_since: r.get("failing_since"),
                consecutive_failures: r.get("consecutive_failures"),
                last_failure_at: r.get("last_failure_at"),
            })
            .collect())
    }
}
