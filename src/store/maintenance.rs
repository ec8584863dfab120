//! Statements for the maintenance jobs: the cluster-wide maintenance lock,
//! batched retention deletes, auto-disable, and the queue gauges of /metrics.
//! Every time-dependent statement takes `now` (or a cutoff) as a parameter.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use uuid::Uuid;

use super::{db, Store, StoreError};

/// What a retention batch deletes; each kind is one statement of `sql/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Successful deliveries (and their attempts): `sql/delivery_delete_success_many.sql`.
    Success,
    /// Failed deliveries, the dead letters (and their attempts):
    /// `sql/delivery_delete_failed_many.sql`.
    Failed,
    /// Events that no delivery needs any more: `sql/event_delete_unneeded_many.sql`.
    Events,
}

impl Retention {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Success => "success",
            Retention::Failed => "failed",
            Retention::Events => "events",
        }
    }
}

/// One batch of a retention delete: how many rows went, and the newest
/// timestamp among them (the next batch starts there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBatch {
    /// Rows deleted.
    pub deleted: i64,
    /// Newest timestamp among them; `None` when none went.
    pub newest: Option<DateTime<Utc>>,
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
}

/// The held maintenance lock: a Postgres session advisory lock on one pooled
/// connection, kept out of everyone else's hands for the whole run.
///
/// Invariant: the connection never returns to the pool still holding the
/// lock. `release` unlocks it; if that fails, or the guard is dropped without
/// `release` (an error or a cancelled run), the connection is detached from
/// the pool and closed, which makes Postgres drop the lock.
pub struct MaintenanceLock {
    conn: Option<Object>,
}

impl MaintenanceLock {
    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let result = async {
            let stmt = statement!("lock_maintenance_release")
                .prepare(&conn)
                .await?;
            let row = conn
                .query_one(&stmt, &[])
                .await
                .map_err(db("lock_maintenance_release"))?;
            Ok::<bool, StoreError>(row.get(0))
        }
        .await;
        match result {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Not held (should not happen): close the session to be sure.
                drop(Object::take(conn));
                Ok(())
            }
            Err(e) => {
                drop(Object::take(conn));
                Err(e)
            }
        }
    }
}

impl Drop for MaintenanceLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Closing the session releases its advisory locks.
            drop(Object::take(conn));
        }
    }
}

impl Store {
    /// Takes the maintenance lock without waiting; `None` when another
    /// session (another instance's maintenance run) holds it.
    pub async fn lock_maintenance_try(&self) -> Result<Option<MaintenanceLock>, StoreError> {
        let conn = self.client().await?;
        let stmt = statement!("lock_maintenance_try").prepare(&conn).await?;
        let row = conn
            .query_one(&stmt, &[])
            .await
            .map_err(db("lock_maintenance_try"))?;
        let taken: bool = row.get(0);
        Ok(taken.then_some(MaintenanceLock { conn: Some(conn) }))
    }

    /// One batch of `kind`'s retention (its statement is named on each
    /// [`Retention`] variant): deletes up to `limit` rows older than `cutoff`,
    /// starting at `floor` (the previous batch's newest timestamp; the first
    /// batch starts at the unix epoch).
    pub async fn retention_delete_many(
        &self,
        kind: Retention,
        floor: Option<DateTime<Utc>>,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        let st = match kind {
            Retention::Success => statement!("delivery_delete_success_many"),
            Retention::Failed => statement!("delivery_delete_failed_many"),
            Retention::Events => statement!("event_delete_unneeded_many"),
        };
        let floor = floor.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let row = self.row(st, &[&floor, &cutoff, &limit]).await?;
        Ok(DeletedBatch {
            deleted: row.get("deleted"),
            newest: row.get("newest"),
        })
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
        })
    }
}

impl Store {
    /// Deletes up to `limit` recorded subscription changes that no event
    /// waiting for fan-out needs any more; returns how many went. Call it
    /// until it returns less than `limit` (a maintenance job).
    pub async fn webhook_subscription_change_prune(&self, limit: i64) -> Result<u64, StoreError> {
        self.exec(statement!("webhook_subscription_change_prune"), &[&limit])
            .await
    }
}
