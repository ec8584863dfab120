//! Statements on `postbox.queue_state` and the queue-wide view
//! `postbox.queue_stats`: the dispatcher's wake-up flag (the protocol is
//! written out at the trigger in `migrations/V1__initial.sql`), the
//! queue-wide counts, pause and resume for every dispatcher, and the
//! wake-up NOTIFY.

use super::{Store, StoreError};

/// Queue-wide counts (view `postbox.queue_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStatsRow {
    /// Due deliveries waiting to be claimed.
    pub waiting: i64,
    /// Deliveries being sent.
    pub active: i64,
    /// Successful deliveries.
    pub completed: i64,
    /// Dead letters.
    pub failed: i64,
    /// Deliveries waiting for a later retry.
    pub delayed: i64,
    /// Due work held back by the pause.
    pub paused: i64,
    /// The queue is paused.
    pub is_paused: bool,
}

impl Store {
    /// Says whether a dispatcher waits for a NOTIFY (`true`: producers send
    /// one on insert) or is busy (`false`: producers skip it).
    pub async fn queue_state_set_waiting(&self, waiting: bool) -> Result<(), StoreError> {
        self.exec(statement!("queue_state_set_waiting"), &[&waiting])
            .await?;
        Ok(())
    }

    /// Queue-wide counts and whether the queue is paused (`sql/queue_stats.sql`).
    pub async fn queue_stats(&self) -> Result<QueueStatsRow, StoreError> {
        let r = self.row(statement!("queue_stats"), &[]).await?;
        Ok(QueueStatsRow {
            waiting: r.get("waiting"),
            active: r.get("active"),
            completed: r.get("completed"),
            failed: r.get("failed"),
            delayed: r.get("delayed"),
            paused: r.get("paused"),
            is_paused: r.get("is_paused"),
        })
    }

    /// Pauses claiming in every dispatcher; fan-out and the API go on.
    pub async fn queue_pause(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_pause"), &[]).await.map(|_| ())
    }

    /// Lets every dispatcher claim again.
    pub async fn queue_resume(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_resume"), &[]).await.map(|_| ())
    }

    /// NOTIFY postbox_wakeup: idle dispatchers look for work now.
    pub async fn queue_wakeup(&self) -> Result<(), StoreError> {
        self.exec(statement!("queue_wakeup"), &[]).await.map(|_| ())
    }
}
