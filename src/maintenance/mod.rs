//! Maintenance: the cron scheduler and its jobs (lease rescue, auto-disable,
//! retention). Each run holds a Postgres advisory lock, so one instance works
//! at a time; the others skip that run. `run_once` is what `postbox maintain`
//! and the tests call; `run` is the scheduler loop of `postbox serve`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::config::MaintenanceConfig;
use crate::store::{Store, StoreError};

mod disable;
mod retention;
mod scheduler;

pub use disable::disable_reason;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// False when another instance held the maintenance lock: nothing was done.
    pub ran: bool,
    /// Deliveries whose lease had expired, returned to the queue.
    pub rescued: u64,
    /// Recorded webhook subscription changes no waiting event needs any more.
    pub pruned_changes: u64,
    /// Webhooks turned off by auto-disable.
    pub disabled: Vec<Uuid>,
    /// Successful deliveries deleted by retention.
    pub deleted_success: i64,
    /// Failed deliveries deleted by retention.
    pub deleted_failed: i64,
    /// Events deleted because no delivery needs them.
    pub deleted_events: i64,
    /// Recover/replay jobs advanced (left unfinished by their API task).
    pub jobs_advanced: usize,
    /// Processed notifications and finished jobs deleted (older than
    /// `POSTBOX_RETENTION_FAILED`).
    pub deleted_notifications: i64,
    pub deleted_jobs: i64,
    /// Ordered delivery: lines with held deliveries whose head was lost,
    /// queued for the dispatchers' promotion pass.
    pub lost_lines: i64,
}

impl RunReport {
    /// One line per job, for `postbox maintain` and the logs.
    pub fn summary(&self, config: &MaintenanceConfig) -> Vec<String> {
        if !self.ran {
            return vec![
                "maintenance: skipped, another instance holds the maintenance lock".into(),
            ];
        }
        let mut lines = vec![
            format!(
                "lease rescue: {} expired lease(s) returned to the queue",
                self.rescued
            ),
            format!(
                "recover/replay: {} unfinished job(s) advanced; deleted {} finished job(s) and {} processed notification(s) older than {}",
                self.jobs_advanced,
                self.deleted_jobs,
                self.deleted_notifications,
                human(config.retention_failed)
            ),
            format!(
                "auto-disable: {} webhook(s) disabled ({}){}",
                self.disabled.len(),
                disable_reason(config.disable_after),
                self.disabled
                    .iter()
                    .map(|id| format!(" {id}"))
                    .collect::<String>()
            ),
            format!(
                "retention: deleted {} successful deliveries older than {}, {} failed deliveries older than {}, {} events no delivery needs",
                self.deleted_success,
                human(config.retention_success),
                self.deleted_failed,
                human(config.retention_failed),
                self.deleted_events
            ),
        ];
        if self.lost_lines > 0 {
            lines.push(format!(
                "ordered delivery: {} line(s) had lost their head; queued for promotion",
                self.lost_lines
            ));
        }
        lines
    }
}

/// Runs the jobs on `config.schedule`, as read from `clock`, until
/// `shutdown` fires. A failed run is logged and the next one runs on schedule.
pub async fn run(
    store: Store,
    config: MaintenanceConfig,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    scheduler::run(store, config, clock, shutdown).await
}

/// Runs every job once, now as `clock` tells it (what `postbox maintain` does).
pub async fn run_once(
    store: &Store,
    config: &MaintenanceConfig,
    clock: &SharedClock,
) -> Result<RunReport, StoreError> {
    run_once_at(store, config, clock.now(), &CancellationToken::new()).await
}

/// Runs every job once as of `now` (tests pin it), under the maintenance
/// lock; returns at once with `ran: false` when another instance holds it.
/// `shutdown` stops the batched deletes between batches.
pub async fn run_once_at(
    store: &Store,
    config: &MaintenanceConfig,
    now: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> Result<RunReport, StoreError> {
    let Some(lock) = store.lock_maintenance_try().await? else {
        metrics::counter!("postbox_maintenance_runs_total", "result" => "skipped").increment(1);
        tracing::debug!("maintenance skipped: another instance holds the lock");
        return Ok(RunReport::default());
    };
    let result = jobs(store, config, now, shutdown).await;
    // Release even when a job failed; an error here closes the session instead.
    let released = lock.release().await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("postbox_maintenance_runs_total", "result" => outcome).increment(1);
    let report = result?;
    released?;
    Ok(report)
}

async fn jobs(
    store: &Store,
    config: &MaintenanceConfig,
    now: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> Result<RunReport, StoreError> {
    let mut report = RunReport {
        ran: true,
        ..RunReport::default()
    };
    report.rescued = rescue(store, now, config.batch_size).await?;
    report.jobs_advanced = advance_jobs(store, now).await?;
    store.delivery_count_rollup().await?;
    // Auto-disable before retention, so it sees the evidence retention removes
    // (retention also keeps each webhook's newest deleted success).
    report.disabled = disable::run_once(store, config, now).await?;
    let deleted = retention::run_once(store, config, now, shutdown).await?;
    report.deleted_success = deleted.success;
    report.deleted_failed = deleted.failed;
    report.deleted_events = deleted.events;
    report.pruned_changes = prune_subscription_changes(store, config.batch_size).await?;
    report.lost_lines = check_lines(store, config.batch_size).await?;
    let cutoff = now
        - chrono::Duration::from_std(config.retention_failed)
            .unwrap_or_else(|_| chrono::Duration::days(36500));
    loop {
        let (n, j) = store
            .notification_delete_processed_many(cutoff, config.batch_size)
            .await?;
        report.deleted_notifications += n;
        report.deleted_jobs += j;
        if (n < config.batch_size && j < config.batch_size) || shutdown.is_cancelled() {
            break;
        }
    }
    Ok(report)
}

/// The most recover/replay jobs one run advances, and for how long each.
const JOBS_PER_RUN: i64 = 10;
const JOB_TIME_PER_RUN: std::time::Duration = std::time::Duration::from_secs(10);

/// Advances the recover/replay jobs no API task finished (its process
/// ended), each in bounded batches for up to `JOB_TIME_PER_RUN`; a job
/// another caller holds is left to it.
async fn advance_jobs(store: &Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let jobs = store.webhook_job_list_unfinished(JOBS_PER_RUN).await?;
    let mut advanced = 0;
    for (job, kind) in jobs {
        if store
            .webhook_job_run(job, kind, JOB_TIME_PER_RUN, || now)
            .await?
            .is_some()
        {
            advanced += 1;
        }
    }
    Ok(advanced)
}

/// Drops the recorded webhook subscription changes that no event waiting for
/// fan-out can need any more (fan-out reads them to match each event against
/// the subscriptions as of its commit), in batches until a short one.
async fn prune_subscription_changes(store: &Store, batch: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.webhook_subscription_change_prune(batch).await?;
        total += n;
        if n < batch as u64 {
            break;
        }
    }
    Ok(total)
}

/// The most lines with held deliveries one run checks (`check_lines`).
const LINES_PER_RUN: i64 = 100_000;

/// Ordered delivery's safety net: queues for promotion every line with held
/// deliveries whose head is no longer in line (changed or deleted by hand),
/// walking the lines in key order in batches from where the last run
/// stopped, at most `LINES_PER_RUN` per run (a larger backlog of lines is
/// covered over several runs). Returns the lines queued.
async fn check_lines(store: &Store, batch: i64) -> Result<i64, StoreError> {
    let (mut walked_all, mut queued_all) = (0, 0);
    while walked_all < LINES_PER_RUN {
        let (walked, queued) = store.ordering_lines_check(batch).await?;
        walked_all += walked;
        queued_all += queued;
        if walked < batch {
            break;
        }
    }
    if queued_all > 0 {
        tracing::warn!(
            lines = queued_all,
            "ordered lines had lost their head; queued for promotion"
        );
    }
    Ok(queued_all)
}

/// Lease rescue: the dispatchers do it every few seconds themselves; running
/// it here too costs one index probe and lets `postbox maintain` rescue with
/// every dispatcher stopped.
async fn rescue(store: &Store, now: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.delivery_rescue_expired(now, batch).await?;
        total += n;
        if n < batch as u64 {
            break;
        }
    }
    if total > 0 {
        metrics::counter!("postbox_maintenance_rescued_total").increment(total);
    }
    Ok(total)
}

/// `5 days`, `24 hours`, `90 seconds`: durations as operators write them.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs > 0 && secs.is_multiple_of(86400) {
        (secs / 86400, "day")
    } else if secs > 0 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs > 0 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(human(Duration::from_secs(5 * 86400)), "5 days");
        assert_eq!(human(Duration::from_secs(86400)), "1 day");
        assert_eq!(human(Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human(Duration::from_secs(120)), "2 minutes");
    }
}
