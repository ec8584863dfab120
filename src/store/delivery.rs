//! Statements on `postbox.deliveries`, with their plain row types. The
//! dispatcher's: claim due deliveries under a lease, record outcomes in
//! batches (fenced by the claim's attempt number), rescue expired leases,
//! the next due time. The API's: a webhook's history, one delivery, the
//! manual retries and the test send (every statement that takes an id is
//! scoped to its owner too, so another owner's id finds nothing).
//! Maintenance's: the counters' roll-up and the queue gauges of /metrics.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::InTransaction;
use super::{
    BatchMember, BreakerRule, ClaimLimits, ClaimedBatch, ClaimedDelivery, CompleteReport,
    Completion, DeliveryStatus, Store, StoreError,
};

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
    /// The batch this delivery was last sent in (V9); `None` if never batched.
    pub batch_id: Option<Uuid>,
    /// Its event's ordering key (V12); `None`: unordered.
    pub ordering_key: Option<String>,
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
            batch_id: r.get("batch_id"),
            ordering_key: r.get("ordering_key"),
        }
    }
}

/// What `delivery_retry` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The owner has no such delivery.
    NotFound,
    /// The delivery is being sent right now.
    InFlight,
    /// Back in the queue, due now.
    Requeued,
}

/// The queue gauges, exact, from the delivery counters (see
/// `sql/delivery_queue_depth.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    /// Deliveries waiting for their first attempt.
    pub pending: i64,
    /// Deliveries waiting for a retry.
    pub retrying: i64,
    /// Deliveries claimed and being sent.
    pub sending: i64,
    /// Dead letters.
    pub failed: i64,
    /// Successful deliveries (exact since the counters; the name and the
    /// `Option` are kept for the callers).
    pub success_estimate: Option<i64>,
    /// Events not fanned out yet.
    pub fanout_pending: i64,
    /// Age of the oldest due (pending or retrying) delivery; 0 when none is due.
    pub oldest_due_seconds: f64,
    /// The queue is paused.
    pub paused: bool,
    /// Webhooks whose circuit breaker is open (held), and half open (a
    /// probe in flight).
    pub breakers_open: i64,
    pub breakers_half_open: i64,
    /// Webhooks their owner paused.
    pub webhooks_paused: i64,
}

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
        retry_schedule: r.get("retry_schedule"),
        webhook_active,
        lease_expires_at: r.get("lease_expires_at"),
        template: r.get("template"),
        ordering_key: r.get("ordering_key"),
        skip_failed: r.get::<_, Option<&str>>("ordering_policy") == Some("skip_failed"),
        in_flight_limited: r.get("in_flight_limited"),
        batch: None,
    }
}

/// One batch claim from its rows (at least one): the members in event
/// order; the claim is the first member's, with the highest attempt of all
/// and the earliest lease.
fn batch_from_rows(id: Uuid, rows: Vec<&Row>) -> ClaimedDelivery {
    let mut members: Vec<BatchMember> = rows
        .iter()
        .map(|r| BatchMember {
            delivery_id: r.get("id"),
            event_id: r.get("event_id"),
            event_type: r.get("event_type"),
            attempt: r.get("attempts"),
            payload: r.get("payload"),
            event_created_at: r.get("event_created_at"),
            ordering_key: r.get("ordering_key"),
        })
        .collect();
    members.sort_by_key(|m| (m.event_created_at, m.event_id));
    let first = rows
        .iter()
        .find(|r| r.get::<_, Uuid>("id") == members[0].delivery_id)
        .expect("the first member is one of the rows");
    let mut claim = claimed_from_row(first, members[0].attempt, first.get("active"));
    claim.attempt = members.iter().map(|m| m.attempt).max().unwrap_or(1);
    claim.lease_expires_at = rows
        .iter()
        .map(|r| r.get::<_, DateTime<Utc>>("lease_expires_at"))
        .min()
        .unwrap_or(claim.lease_expires_at);
    claim.batch = Some(ClaimedBatch { id, members });
    claim
}

impl Store {
    /// Claims up to `claim.limit` due deliveries (pending or retrying),
    /// committed as `sending` under a lease before this returns.
    pub async fn delivery_claim(
        &self,
        now: DateTime<Utc>,
        claim: ClaimLimits<'_>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let rows = self
            .claim_rows(statement!("delivery_claim"), now, claim)
            .await?;
        Ok(rows
            .iter()
            .map(|r| claimed_from_row(r, r.get("attempts"), r.get("active")))
            .collect())
    }

    /// Runs a claim statement (`delivery_claim` or
    /// `delivery_claim_batch_many`: the same parameters, the same columns).
    /// A row without a payload lost its event: the statement made it a dead
    /// letter instead of a claim, so it is left out.
    async fn claim_rows(
        &self,
        st: super::Statement,
        now: DateTime<Utc>,
        claim: ClaimLimits<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let lease_secs = claim.lease.as_secs_f64();
        let mut rows = self
            .rows(
                st,
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
        rows.retain(|r| r.get::<_, Option<&str>>("payload").is_some());
        Ok(rows)
    }

    /// Claims up to `claim.limit` batches of batched webhooks
    /// (`sql/delivery_claim_batch_many.sql`), each committed as `sending`
    /// under a lease before this returns; each batch is one claim (one
    /// request), its members in event order.
    pub async fn delivery_claim_batch_many(
        &self,
        now: DateTime<Utc>,
        claim: ClaimLimits<'_>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let rows = self
            .claim_rows(statement!("delivery_claim_batch_many"), now, claim)
            .await?;
        let mut batches: Vec<(Uuid, Vec<&Row>)> = Vec::new();
        for r in &rows {
            let id: Uuid = r.get("batch_id");
            match batches.iter_mut().find(|(b, _)| *b == id) {
                Some((_, members)) => members.push(r),
                None => batches.push((id, vec![r])),
            }
        }
        Ok(batches
            .into_iter()
            .map(|(id, rows)| batch_from_rows(id, rows))
            .collect())
    }

    /// Records many outcomes in one round trip (`sql/delivery_complete_many.sql`):
    /// an outcome applies while its attempt is the row's current one (in
    /// flight, or rescued and not claimed again); one whose row another
    /// transaction holds locked is skipped, not waited for, and reported so
    /// that the caller can write it again; the rest (their attempt was
    /// superseded) change nothing.
    ///
    /// Ordered delivery (V12): when an outcome frees its (webhook, ordering
    /// key) line (`Completion::frees_line`), the write runs in a transaction
    /// of two statements: the write, which first takes the lines' locks, and
    /// the promotion of the next held delivery of each
    /// (`sql/delivery_promote_lines.sql`, counted in
    /// `CompleteReport::promoted`). Otherwise the write alone, as before.
    pub async fn delivery_complete_many(
        &self,
        outcomes: &[Completion],
        now: DateTime<Utc>,
    ) -> Result<CompleteReport, StoreError> {
        if outcomes.is_empty() {
            return Ok(CompleteReport::default());
        }
        let lines = lines_freed(outcomes);
        let client = self.client().await?;
        if lines.1.is_empty() {
            return self.complete_rows(&client, outcomes, &lines, now).await;
        }
        let (line_hooks, line_keys) = &lines;
        let tx = InTransaction::begin(client, "complete: begin").await?;
        let mut report = self
            .complete_rows(tx.client(), outcomes, &lines, now)
            .await?;
        report.promoted = promote(tx.client(), line_hooks, line_keys, now).await?;
        tx.commit("complete: commit").await?;
        Ok(report)
    }

    /// Promotes the next held delivery of up to `limit` lines queued in
    /// `postbox.ordering_dirty` (`sql/ordering_dirty_take.sql`, then
    /// `sql/ordering_lines_lock.sql` and `sql/delivery_promote_lines.sql`,
    /// one transaction). Returns (lines taken, deliveries promoted).
    pub async fn ordering_promote_dirty(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<(usize, u64), StoreError> {
        let tx = InTransaction::begin(self.client().await?, "promote: begin").await?;
        let rows = statement!("ordering_dirty_take")
            .query(tx.client(), &[&limit])
            .await?;
        let hooks: Vec<Uuid> = rows.iter().map(|r| r.get("webhook_id")).collect();
        let keys: Vec<String> = rows.iter().map(|r| r.get("ordering_key")).collect();
        let mut promoted = 0;
        if !rows.is_empty() {
            statement!("ordering_lines_lock")
                .query_one(tx.client(), &[&hooks, &keys])
                .await?;
            promoted = promote(tx.client(), &hooks, &keys, now).await?;
        }
        tx.commit("promote: commit").await?;
        Ok((rows.len(), promoted))
    }

    /// Queues for promotion the lines with held deliveries but no head in
    /// line, walking up to `limit` lines on from the cursor the database
    /// keeps (`sql/ordering_lines_check.sql`). Returns (lines walked, lines
    /// queued); fewer walked than `limit`: the walk reached the end and
    /// starts over next time.
    pub async fn ordering_lines_check(&self, limit: i64) -> Result<(i64, i64), StoreError> {
        let r = self
            .row(statement!("ordering_lines_check"), &[&limit])
            .await?;
        Ok((r.get("walked"), r.get("queued")))
    }

    /// `sql/delivery_complete_many.sql` on `client`; it first takes the
    /// locks of `lines` (webhooks, keys).
    async fn complete_rows(
        &self,
        client: &deadpool_postgres::Object,
        outcomes: &[Completion],
        lines: &(Vec<Uuid>, Vec<String>),
        now: DateTime<Utc>,
    ) -> Result<CompleteReport, StoreError> {
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
        let throttles: Vec<Option<DateTime<Utc>>> =
            outcomes.iter().map(|o| o.throttle_until).collect();
        let health: Vec<Option<bool>> = outcomes.iter().map(|o| o.endpoint_ok).collect();
        let leave: Vec<bool> = outcomes.iter().map(|o| o.leave_line).collect();
        let rule = BreakerRule::DEFAULT;
        let rows = statement!("delivery_complete_many")
            .query(
                client,
                &[
                    &ids,
                    &attempts,
                    &statuses,
                    &next,
                    &codes,
                    &bodies,
                    &errors,
                    &started,
                    &durations,
                    &now,
                    &throttles,
                    &health,
                    &rule.open_after_failures,
                    &rule.first_probe_secs,
                    &rule.max_probe_secs,
                    &leave,
                    &lines.0,
                    &lines.1,
                ],
            )
            .await?;
        let mut report = CompleteReport::default();
        for r in &rows {
            match (
                r.get::<_, Option<bool>>("applied"),
                r.get::<_, Option<&str>>("breaker"),
            ) {
                (Some(true), _) => report.applied += 1,
                (Some(false), _) => report.skipped.push(r.get("id")),
                (None, Some(state)) => report.breaker.push((r.get("id"), state.to_string())),
                (None, None) => {}
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

    /// Folds the counters' pending deltas into `postbox.delivery_counts` and
    /// `postbox.webhook_activity` (see `sql/delivery_count_rollup.sql`);
    /// returns how many delta rows were folded. Readers are exact before and
    /// after; this keeps what they sum small.
    pub async fn delivery_count_rollup(&self) -> Result<i64, StoreError> {
        let row = self.row(statement!("delivery_count_rollup"), &[]).await?;
        Ok(row.get("folded"))
    }

    /// The queue gauges of /metrics.
    pub async fn delivery_queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        let r = self
            .row(statement!("delivery_queue_depth"), &[&now])
            .await?;
        Ok(QueueDepth {
            pending: r.get("pending"),
            retrying: r.get("retrying"),
            sending: r.get("sending"),
            failed: r.get("failed"),
            success_estimate: r.get("success_estimate"),
            fanout_pending: r.get("fanout_pending"),
            oldest_due_seconds: r.get("oldest_due_seconds"),
            paused: r.get("paused"),
            breakers_open: r.get("breakers_open"),
            breakers_half_open: r.get("breakers_half_open"),
            webhooks_paused: r.get("webhooks_paused"),
        })
    }
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

    /// One delivery of the owner's webhook; `None` when the owner has no such one.
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

    /// Puts one delivery of the owner's webhook back in the queue, due now,
    /// unless it is being sent (`sql/delivery_retry.sql`).
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
                Some(id) => self
                    .row(
                        statement!("delivery_retry_failed_by_webhook"),
                        &[&id, &BATCH],
                    )
                    .await?
                    .get::<_, i64>("requeued") as u64,
                None => self
                    .row(statement!("delivery_retry_failed_many"), &[&BATCH])
                    .await?
                    .get::<_, i64>("requeued") as u64,
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
        Ok(row.map(|r| claimed_from_row(&r, r.get("attempts"), r.get("active"))))
    }
}

/// One row of a delivery log window: the delivery (without its response
/// body) and whether it passes the filters (`delivery_page_by_webhook`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryWindowRow {
    pub delivery: DeliveryRow,
    pub matches: bool,
}

/// Where a delivery log window starts and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryWindow<'a> {
    /// Rows strictly older than this `(created_at, id)` key.
    pub before: (DateTime<Utc>, Uuid),
    /// Rows created at or after this time only.
    pub since: Option<DateTime<Utc>>,
    /// Rows read at most (index entries and heap rows alike).
    pub size: i64,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<&'a str>,
}

impl Store {
    /// A window of the owner's webhook's deliveries, newest first, each
    /// marked with whether it passes the filters (see
    /// `sql/delivery_page_by_webhook.sql`): empty for another owner's webhook.
    pub async fn delivery_page_by_webhook(
        &self,
        webhook_id: Uuid,
        owner: &str,
        w: &DeliveryWindow<'_>,
    ) -> Result<Vec<DeliveryWindowRow>, StoreError> {
        let rows = self
            .rows(
                statement!("delivery_page_by_webhook"),
                &[
                    &webhook_id,
                    &owner,
                    &w.before.0,
                    &w.before.1,
                    &w.since,
                    &w.size,
                    &w.status,
                    &w.event_type,
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeliveryWindowRow {
                delivery: DeliveryRow::from_row(r),
                matches: r.get("matches"),
            })
            .collect())
    }

    /// The owner's deliveries among `ids`, without response bodies, in no
    /// particular order.
    pub async fn delivery_get_many(
        &self,
        ids: &[Uuid],
        owner: &str,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = self
            .rows(statement!("delivery_get_many"), &[&ids, &owner])
            .await?;
        Ok(rows.iter().map(DeliveryRow::from_row).collect())
    }

    /// Up to `limit` of the owner's deliveries created at or after `since`,
    /// newest first, across its webhooks, without response bodies.
    pub async fn delivery_list_recent_by_owner(
        &self,
        owner: &str,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = self
            .rows(
                statement!("delivery_list_recent_by_owner"),
                &[&owner, &since, &limit],
            )
            .await?;
        Ok(rows.iter().map(DeliveryRow::from_row).collect())
    }
}

/// The (webhook, ordering key) lines the outcomes may free, each once (the
/// statements sort them again, in the database's order, before locking).
fn lines_freed(outcomes: &[Completion]) -> (Vec<Uuid>, Vec<String>) {
    let mut lines: Vec<(Uuid, &str)> = outcomes
        .iter()
        .filter(|o| o.frees_line())
        .filter_map(|o| Some((o.webhook_id, o.ordering_key.as_deref()?)))
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines.into_iter().map(|(w, k)| (w, k.to_string())).unzip()
}

/// `sql/delivery_promote_lines.sql` on `client`: the promoted count.
async fn promote(
    client: &deadpool_postgres::Object,
    hooks: &[Uuid],
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let row = statement!("delivery_promote_lines")
        .query_one(client, &[&hooks, &keys, &now])
        .await?;
    Ok(row.get::<_, i64>("promoted") as u64)
}
