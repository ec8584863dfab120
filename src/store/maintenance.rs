//! What the maintenance jobs need that belongs to no one table: the
//! cluster-wide maintenance lock and the batched retention deletes (over
//! deliveries and events). Their other statements sit in their tables'
//! files. Every time-dependent statement takes a cutoff as a parameter.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::{Store, StoreError};

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
            let row = statement!("lock_maintenance_release")
                .query_one(&conn, &[])
                .await?;
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
        let row = statement!("lock_maintenance_try")
            .query_one(&conn, &[])
            .await?;
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
        events_cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<DeletedBatch, StoreError> {
        let floor = floor.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let row = match kind {
            Retention::Success => {
                let st = statement!("delivery_delete_success_many");
                self.row(st, &[&floor, &cutoff, &limit, &events_cutoff])
                    .await?
            }
            Retention::Failed => {
                let st = statement!("delivery_delete_failed_many");
                self.row(st, &[&floor, &cutoff, &limit, &events_cutoff])
                    .await?
            }
            Retention::Events => {
                let st = statement!("event_delete_unneeded_many");
                self.row(st, &[&floor, &cutoff, &limit]).await?
            }
        };
        Ok(DeletedBatch {
            deleted: row.get("deleted"),
            newest: row.get("newest"),
        })
    }
}
