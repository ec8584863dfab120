//! Statements on `postbox.deliveries` that the dispatcher runs: claim due
//! deliveries under a lease, record outcomes in batches (fenced by the
//! claim's attempt number), rescue expired leases, and the next due time.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    ClaimLimits, ClaimedDelivery, CompleteReport, Completion, DeliveryStatus, Store, StoreError,
};

/// A claimed delivery from a row of `event_fanout_many` or `delivery_claim`
/// (both return the same columns); `attempt` is the claim's fencing token.
pub(super) fn claimed_from_row(r: &Row, attempt: i32, webhook_active: bool) -> ClaimedDelivery {
    ClaimedDelivery {
        id: r.get("id"),
        webhook_id: r.get("webhook_id"),
        event_id: r.get("event_id"),
        event_type: r.get("event_type"),
        attempt,
        payload: r.get("payload"),
        event_created_at: r.get("event_created_at"),
        url: r.get("url"),
        secret: r.get("secret"),
        previous_secret: r.get("previous_secret"),
        headers: r.get("headers"),
        max_retries: r.get("max_retries"),
        retry_delay_seconds: r.get("retry_delay_seconds"),
        webhook_active,
        lease_expires_at: r.get("lease_expires_at"),
    }
}

impl Store {
    /// Claims up to `claim.limit` due deliveries (pending or retrying),
    /// committed as `sending` under a lease before this returns.
    pub async fn delivery_claim(
        &self,
        now: DateTime<Utc>,
        claim: ClaimLimits<'_>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lease_secs = claim.lease.as_secs_f64();
        let rows = self
            .rows(
                statement!("delivery_claim"),
                &[
                    &claim.limit,
                    &now,
                    &claim.busy_webhooks,
                    &lease_secs,
                    &claim.per_webhook,
                    &claim.busy_room,
                ],
            )
            .await?;
        // A row without a payload lost its event: the statement made it a
        // dead letter instead of a claim.
        Ok(rows
            .iter()
            .filter(|r| r.get::<_, Option<&str>>("payload").is_some())
            .map(|r| claimed_from_row(r, r.get("attempts"), r.get("active")))
            .collect())
    }

    /// Records many outcomes in one round trip (`sql/delivery_complete_many.sql`):
    /// an outcome applies while its attempt is the row's current one (in
    /// flight, or rescued and not claimed again); one whose row another
    /// transaction holds locked is skipped, not waited for, and reported so
    /// that the caller can write it again; the rest (their attempt was
    /// superseded) change nothing.
    pub async fn delivery_complete_many(
        &self,
        outcomes: &[Completion],
        now: DateTime<Utc>,
    ) -> Result<CompleteReport, StoreError> {
        if outcomes.is_empty() {
            return Ok(CompleteReport::default());
        }
        let ids: Vec<Uuid> = outcomes.iter().map(|o| o.delivery_id).collect();
        let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
        let statuses: Vec<DeliveryStatus> = outcomes.iter().map(|o| o.status).collect();
        let next: Vec<Option<DateTime<Utc>>> = outcomes.iter().map(|o| o.next_attempt_at).collect();
        let codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.response_code).collect();
        let bodies: Vec<Option<&str>> = outcomes
            .iter()
            .map(|o| o.response_body.as_deref())
            .collect();
        let errors: Vec<Option<&str>> = outcomes
            .iter()
            .map(|o| o.error_message.as_deref())
            .collect();
        let started: Vec<DateTime<Utc>> = outcomes.iter().map(|o| o.started_at).collect();
        let durations: Vec<i32> = outcomes.iter().map(|o| o.duration_ms).collect();
        let rows = self
            .rows(
                statement!("delivery_complete_many"),
                &[
                    &ids, &attempts, &statuses, &next, &codes, &bodies, &errors, &started,
                    &durations, &now,
                ],
            )
            .await?;
        let mut report = CompleteReport::default();
        for r in &rows {
            if r.get::<_, bool>("applied") {
                report.applied += 1;
            } else {
                report.skipped.push(r.get("id"));
            }
        }
        Ok(report)
    }

    /// Requeues up to `limit` deliveries whose lease expired; returns how many.
    pub async fn delivery_rescue_expired(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError> {
        self.delivery_rescue_expired_except(now, limit, &[]).await
    }

    /// As `delivery_rescue_expired`, leaving the deliveries `keep` alone
    /// (their outcome is in the caller's hands, waiting to be written).
    pub async fn delivery_rescue_expired_except(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        keep: &[Uuid],
    ) -> Result<u64, StoreError> {
        self.exec(
            statement!("delivery_rescue_expired"),
            &[&now, &limit, &keep],
        )
        .await
    }

    /// The earliest instant at which queued work becomes due, if any.
    pub async fn delivery_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = self.row(statement!("delivery_next_due"), &[]).await?;
        Ok(row.get(0))
    }
}
