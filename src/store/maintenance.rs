//! Statements for the maintenance jobs: the cluster-wide maintenance lock,
//! batched retention deletes, auto-disable, and the queue gauges of /metrics.
//! Every time-dependent statement takes `now` (or a cutoff) as a parameter.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use uuid::Uuid;

use super::{db, Store, StoreError};

/// One batch of a retention delete: how many rows went, and the newest
/// timestamp among them (the next batch starts there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBatch {
    pub deleted: i64,
    pub newest: Option<DateTime<Utc>>,
}

/// The queue gauges: exact where a partial index makes it cheap, estimated
/// for successes (see `sql/delivery_queue_depth.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub pending: i64,
    pub retrying: i64,
    pub sending: i64,
    pub failed: i64,
    /// Planner estimate; `None` before the table's first ANALYZE.
    pub success_estimate: Option<i64>,
    pub fanout_pending: i64,
    /// Age of the oldest due (pending or retrying) delivery; 0 when none is due.
    pub oldest_due_seconds: f64,
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
            let stmt = conn
                .prepare_cached(sql!("maintenance_lock_release"))
                .await
                .map_err(db("maintenance_lock_release"))?;
            let row = conn
                .query_one(&stmt, &[])
                .await
                .map_err(db("maintenance_lock_release"))?;
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
    pub async fn maintenance_lock_try(&self) -> Result<Option<MaintenanceLock>, StoreError> {
        let conn = self.client().await?;
        let stmt = conn
            .prepare_cached(sql!("maintenance_lock_try"))
            .await
            .map_err(db("maintenance_lock_try"))?;
        let row = conn
            .query_one(&stmt, &[])
            .await
            .map_err(db("maintenance_lock_try"))?;
        let taken: bool = row.get(0);
        Ok(taken.then_some(MaintenanceLock { conn: Some(conn) }))
    }

    /// One batch of success retention; see the SQL file.
    pub async fn maintenance_delivery_delete_success(
        &self,
        floor: Option<DateTime<Utc>>,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        self.delete_batch(
            "maintenance_delivery_delete_success",
            sql!("maintenance_delivery_delete_success"),
            floor,
            cutoff,
            limit,
        )
        .await
    }

    /// One batch of failed (dead-letter) retention; see the SQL file.
    pub async fn maintenance_delivery_delete_failed(
        &self,
        floor: Option<DateTime<Utc>>,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        self.delete_batch(
            "maintenance_delivery_delete_failed",
            sql!("maintenance_delivery_delete_failed"),
            floor,
            cutoff,
            limit,
        )
        .await
    }

    /// One batch of event retention (events no delivery needs); see the SQL file.
    pub async fn maintenance_event_delete_unneeded(
        &self,
        floor: Option<DateTime<Utc>>,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        self.delete_batch(
            "maintenance_event_delete_unneeded",
            sql!("maintenance_event_delete_unneeded"),
            floor,
            cutoff,
            limit,
        )
        .await
    }

    async fn delete_batch(
        &self,
        op: &'static str,
        sql: &str,
        floor: Option<DateTime<Utc>>,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        // The first batch of a run starts at the beginning of (unix) time.
        let floor = floor.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db(op))?;
        let row = client
            .query_one(&stmt, &[&floor, &cutoff, &limit])
            .await
            .map_err(db(op))?;
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
                "webhook_disable_failing",
                sql!("webhook_disable_failing"),
                &[&now, &cutoff, &reason],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// The queue gauges of /metrics.
    pub async fn delivery_queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        let r = self
            .row(
                "delivery_queue_depth",
                sql!("delivery_queue_depth"),
                &[&now],
            )
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
