//! Statements on `postbox.webhook_jobs`: recover and replay over a time
//! range, advanced in bounded batches (one statement per batch) by the API
//! task that created the job and by any maintenance run after it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

/// What a job does (`webhook_jobs.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Requeue the webhook's dead letters of the range.
    Recover,
    /// Send the webhook every matching event of the range again (and
    /// backfill the ones it never had).
    Replay,
}

impl JobKind {
    /// The SQL label.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Recover => "recover",
            JobKind::Replay => "replay",
        }
    }

    fn parse(s: &str) -> Option<JobKind> {
        [JobKind::Recover, JobKind::Replay]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A job's range: events created in `[since, until)` of `event_types`
/// (`None`: all; `group.*` and `*` match as subscriptions do).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRange {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub event_types: Option<Vec<String>>,
}

/// Where a job stands after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    /// Deliveries requeued or created so far.
    pub done: i64,
    pub finished: bool,
}

/// How many rows one batch walks at most: well under a second per
/// statement (docs/PERFORMANCE.md, "Recover and replay").
pub const JOB_BATCH: i64 = 1000;

impl Store {
    /// Records a job for the owner's webhook; its id, or `None` when the
    /// owner has no such webhook.
    pub async fn webhook_job_insert(
        &self,
        webhook_id: Uuid,
        owner: &str,
        kind: JobKind,
        range: &JobRange,
    ) -> Result<Option<Uuid>, StoreError> {
        let row = self
            .row_opt(
                statement!("webhook_job_insert"),
                &[
                    &webhook_id,
                    &owner,
                    &kind.as_str(),
                    &range.since,
                    &range.until,
                    &range.event_types,
                ],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Advances the job by one batch of at most `batch` rows; `None` when
    /// it is finished, gone, or another caller holds it right now.
    pub async fn webhook_job_advance(
        &self,
        job: Uuid,
        kind: JobKind,
        batch: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<JobProgress>, StoreError> {
        let statement = match kind {
            JobKind::Recover => statement!("webhook_job_advance_recover"),
            JobKind::Replay => statement!("webhook_job_advance_replay"),
        };
        let row = self.row_opt(statement, &[&job, &batch, &now]).await?;
        Ok(row.map(|r| JobProgress {
            done: r.get("done"),
            finished: r.get("finished"),
        }))
    }

    /// Deletes up to `limit` notifications processed before `cutoff` and up
    /// to `limit` jobs finished before it; how many of each went.
    pub async fn notification_delete_processed_many(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<(i64, i64), StoreError> {
        let r = self
            .row(
                statement!("notification_delete_processed_many"),
                &[&cutoff, &limit],
            )
            .await?;
        Ok((r.get("notifications"), r.get("jobs")))
    }

    /// Up to `limit` unfinished jobs, oldest first.
    pub async fn webhook_job_list_unfinished(
        &self,
        limit: i64,
    ) -> Result<Vec<(Uuid, JobKind)>, StoreError> {
        let rows = self
            .rows(statement!("webhook_job_list_unfinished"), &[&limit])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), JobKind::parse(r.get(1))?)))
            .collect())
    }

    /// Runs the job's batches until it finishes or `budget` has passed;
    /// where it stands (`None`: another caller holds it, or it is gone).
    pub async fn webhook_job_run(
        &self,
        job: Uuid,
        kind: JobKind,
        budget: std::time::Duration,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<Option<JobProgress>, StoreError> {
        let started = std::time::Instant::now();
        let mut last = None;
        loop {
            match self
                .webhook_job_advance(job, kind, JOB_BATCH, now())
                .await?
            {
                None => return Ok(last),
                Some(p) if p.finished || started.elapsed() >= budget => return Ok(Some(p)),
                Some(p) => last = Some(p),
            }
        }
    }
}
