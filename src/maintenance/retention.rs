//! Retention: deletes finished deliveries (with their attempts) and the
//! events no delivery needs, in batches of `batch_size` rows per statement
//! until a short batch. Each statement is its own short transaction that
//! locks only the rows it deletes (SKIP LOCKED), so the queue never waits on
//! it; each batch starts where the previous one ended, so nothing is rescanned.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::MaintenanceConfig;
use crate::store::{Retention, Store, StoreError};

/// Rows deleted by one retention run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deleted {
    pub success: i64,
    pub failed: i64,
    pub events: i64,
}

pub(super) async fn run_once(
    store: &Store,
    config: &MaintenanceConfig,
    now: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> Result<Deleted, StoreError> {
    let success_cutoff = now - to_chrono(config.retention_success, "POSTBOX_RETENTION_SUCCESS")?;
    let failed_cutoff = now - to_chrono(config.retention_failed, "POSTBOX_RETENTION_FAILED")?;
    // Events are kept for replays at least POSTBOX_RETENTION_EVENTS.
    let events_cutoff =
        success_cutoff.min(now - to_chrono(config.retention_events, "POSTBOX_RETENTION_EVENTS")?);
    let batch = config.batch_size.max(1);
    let run = |kind, cutoff| in_batches(store, kind, cutoff, events_cutoff, batch, shutdown);
    let success = run(Retention::Success, success_cutoff).await?;
    let failed = run(Retention::Failed, failed_cutoff).await?;
    // Events last: the deliveries that kept them alive are gone by now.
    let events = run(Retention::Events, events_cutoff).await?;
    Ok(Deleted {
        success,
        failed,
        events,
    })
}

/// Deletes `kind` in batches until one deletes fewer than `batch` rows (or
/// shutdown), each batch starting at the previous batch's newest timestamp.
async fn in_batches(
    store: &Store,
    kind: Retention,
    cutoff: DateTime<Utc>,
    events_cutoff: DateTime<Utc>,
    batch: i64,
    shutdown: &CancellationToken,
) -> Result<i64, StoreError> {
    let mut total = 0;
    let mut floor = None;
    loop {
        let b = store
            .retention_delete_many(kind, floor, cutoff, events_cutoff, batch)
            .await?;
        total += b.deleted;
        if b.deleted > 0 {
            metrics::counter!("postbox_maintenance_deleted_total", "kind" => kind.as_str())
                .increment(b.deleted as u64);
        }
        if b.deleted < batch || shutdown.is_cancelled() {
            break;
        }
        floor = b.newest;
        // Let the dispatcher's statements in between batches.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

fn to_chrono(d: std::time::Duration, name: &str) -> Result<chrono::Duration, StoreError> {
    chrono::Duration::from_std(d)
        .map_err(|e| StoreError::Config(format!("{name} out of range: {e}")))
}
