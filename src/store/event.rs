//! Statements on `postbox.events`: publishing one event and the dispatcher's
//! fan-out, which turns committed events into deliveries and claims the first
//! of them in the same statement.

use chrono::{DateTime, Utc};
use postgres_types::ToSql;
use uuid::Uuid;

use super::delivery::claimed_from_row;
use super::{ClaimLimits, FanoutResult, Store, StoreError, FANOUT_MAX_DELIVERIES};

/// `sql/event_publish.sql`, named once: `postbox::publish` (in the
/// caller's transaction) and the benchmark's producers prepare it on their
/// own connections.
pub const EVENT_PUBLISH_SQL: &str = sql!("event_publish");

/// The optional inputs of a publish, beside type, payload and owner.
/// `Default` is a plain, unordered event without an idempotency key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions<'a> {
    /// A second publish with the same owner and key adds nothing and answers
    /// the first event's id.
    pub idempotency_key: Option<&'a str>,
    /// Deliveries of one key go one at a time per webhook, in commit order
    /// (1-256 bytes; the database refuses others with SQLSTATE 22023).
    pub ordering_key: Option<&'a str>,
    /// Cancels the key's not-yet-sent deliveries of the same event type, in
    /// the caller's transaction; needs `ordering_key` (else SQLSTATE 22023).
    pub supersede: bool,
}

impl PublishOptions<'_> {
    /// The six parameters of `sql/event_publish.sql` and
    /// `sql/event_publish_outcome.sql`, in their order: type, payload, owner,
    /// then these options.
    pub fn params<'a>(
        &'a self,
        event_type: &'a &'a str,
        payload: &'a serde_json::Value,
        owner_id: &'a &'a str,
    ) -> [&'a (dyn ToSql + Sync); 6] {
        [
            event_type,
            payload,
            owner_id,
            &self.idempotency_key,
            &self.ordering_key,
            &self.supersede,
        ]
    }
}

/// What publishing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The event's id: for a repeated idempotency key, the first event's.
    pub id: Uuid,
    /// The key was used before: nothing was added.
    pub duplicate: bool,
    /// The stored event has the type and (jsonb-equal) payload sent; always
    /// true for a new event.
    pub same_content: bool,
}

impl Store {
    /// Publishes one event on a pooled connection
    /// (`sql/event_publish_outcome.sql`, the INSERT `postbox.publish()` runs)
    /// and says whether it was new. Callers that publish inside their own
    /// transaction use `postbox::publish` instead. A keyed publish waits
    /// for any open transaction that published the same (owner, key).
    pub async fn event_publish(
        &self,
        event_type: &str,
        payload: &serde_json::Value,
        owner_id: &str,
        options: &PublishOptions<'_>,
    ) -> Result<Published, StoreError> {
        // No row: the first event of this key committed while the statement
        // waited for it, after its snapshot; the next statement sees it.
        for _ in 0..3 {
            let row = self
                .row_opt(
                    statement!("event_publish_outcome"),
                    &options.params(&event_type, payload, &owner_id),
                )
                .await?;
            if let Some(r) = row {
                return Ok(Published {
                    id: r.get("id"),
                    duplicate: r.get("duplicate"),
                    same_content: r.get("same_content"),
                });
            }
        }
        Err(StoreError::Missing("event_publish_outcome"))
    }

    /// Fans out up to `events` events and claims up to `claim.limit` of the
    /// new deliveries in the same statement (see the SQL file). The first row
    /// always carries the batch summary; claimed deliveries start at attempt 1.
    pub async fn event_fanout_many(
        &self,
        events: i64,
        now: DateTime<Utc>,
        claim: ClaimLimits<'_>,
    ) -> Result<FanoutResult, StoreError> {
        let lease_secs = claim.lease.as_secs_f64();
        let rows = self
            .rows(
                statement!("event_fanout_many"),
                &[
                    &events,
                    &now,
                    &claim.limit,
                    &claim.busy_webhooks,
                    &lease_secs,
                    &claim.per_webhook,
                    &claim.busy_room,
                    &FANOUT_MAX_DELIVERIES,
                ],
            )
            .await?;
        let mut result = FanoutResult::default();
        if let Some(r) = rows.first() {
            result.events = r.get("events");
            result.partial = r.get("partial");
            result.deliveries = r.get("deliveries");
            result.queued = r.get("queued");
            result.next_due = r.get("next_due");
            result.barrier_clear = r.get("barrier_clear");
            result.lines_dirty = r.get("lines_dirty");
        }
        for r in &rows {
            let id: Option<Uuid> = r.get("id");
            if id.is_some() {
                result.claimed.push(claimed_from_row(r, 1, true));
            }
        }
        Ok(result)
    }
}

/// A stored event, as the portal's delivery page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// The owner's event `id`; `None` for another owner's or a deleted one.
    pub async fn event_get(&self, id: Uuid, owner: &str) -> Result<Option<EventRow>, StoreError> {
        let row = self
            .row_opt(statement!("event_get"), &[&id, &owner])
            .await?;
        Ok(row.map(|r| EventRow {
            id: r.get("id"),
            event_type: r.get("event_type"),
            payload: r.get("payload"),
            created_at: r.get("created_at"),
        }))
    }
}
