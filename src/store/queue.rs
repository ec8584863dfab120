//! Statements on `postbox.queue_state` that the dispatcher runs: the wake-up
//! flag of the protocol written out at the trigger in
//! `migrations/V1__initial.sql`.

use super::{Store, StoreError};

impl Store {
    /// Says whether a dispatcher waits for a NOTIFY (`true`: producers send
    /// one on insert) or is busy (`false`: producers skip it).
    pub async fn queue_state_set_waiting(&self, waiting: bool) -> Result<(), StoreError> {
        self.exec(statement!("queue_state_set_waiting"), &[&waiting])
            .await?;
        Ok(())
    }
}
