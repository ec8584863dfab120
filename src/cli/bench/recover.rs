//! The recover part: one webhook with `DEAD_LETTERS` dead letters (paused,
//! so that the recovered rows stay queued), recovered by one job in batches
//! of `JOB_BATCH` as the API runs it; the figure is the longest batch
//! statement and the whole job's time (target: no statement over 1 s).

use std::time::{Duration, Instant};

use postbox::store::{JobKind, JobRange, Store, JOB_BATCH};

use super::add_endpoints;
use super::receiver::BenchReceiver;
use super::report::RecoverFigures;

/// Dead letters recovered.
pub const DEAD_LETTERS: i32 = 100_000;

/// Runs the part (`dead_letters` rows).
pub async fn run(
    store: &Store,
    receiver: &BenchReceiver,
    secret: &str,
    dead_letters: i32,
) -> anyhow::Result<RecoverFigures> {
    let hooks = add_endpoints(store, receiver, "recover", 1, secret, false).await?;
    store
        .bench_dead_letters_insert_many(hooks[0], dead_letters, "recover0")
        .await?;
    let range = JobRange {
        since: chrono::Utc::now() - chrono::Duration::hours(2),
        until: chrono::Utc::now(),
        event_types: None,
    };
    let job = store
        .webhook_job_insert(hooks[0], "recover0", JobKind::Recover, &range)
        .await?
        .ok_or_else(|| anyhow::anyhow!("recover: the webhook vanished"))?;
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    let mut batches = 0;
    let mut recovered = 0;
    loop {
        let t = Instant::now();
        let p = store
            .webhook_job_advance(job, JobKind::Recover, JOB_BATCH, chrono::Utc::now())
            .await?;
        longest = longest.max(t.elapsed());
        let Some(p) = p else { break };
        batches += 1;
        recovered = p.done;
        if p.finished {
            break;
        }
    }
    let total = started.elapsed();
    // Its rows are not sent: the webhook goes with them.
    store.webhook_delete(hooks[0], "recover0").await?;
    Ok(RecoverFigures {
        dead_letters: dead_letters as i64,
        recovered,
        batches,
        longest_statement_ms: longest.as_secs_f64() * 1000.0,
        total_seconds: total.as_secs_f64(),
    })
}
