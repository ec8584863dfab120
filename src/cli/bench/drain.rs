//! The drain parts: a backlog committed in one statement, timed until the
//! receiver has every delivery to a healthy endpoint. Each run uses fresh
//! webhooks and fresh events; `mod.rs` runs every part three times,
//! alternating between the parts, and reports the median and the spread.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postbox::store::Store;

use super::pgcpu::PgCpu;
use super::receiver::BenchReceiver;
use super::report::DrainFigures;
use super::{add_endpoints, wait_for_idle_except};

/// Fresh runs per drain figure.
pub const RUNS: usize = 3;

/// One drain part.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// Owner prefix of its webhooks (the run number is appended).
    pub prefix: &'static str,
    pub endpoints: usize,
    pub events: usize,
    /// Endpoint 0 never answers and receives half of the events (isolation).
    pub hang: bool,
    /// Count the row writes per delivery (waits for the statistics: about
    /// 11 s per run).
    pub count_writes: bool,
    /// The healthy webhooks batch up to this many events per request.
    pub batch: Option<i32>,
    /// Ordering keys the events are spread over (0: unkeyed, the unordered
    /// path). Keys are per owner, so each run's lines are fresh.
    pub keys: i32,
}

/// What every drain run needs.
pub struct Bench<'a> {
    pub store: &'a Store,
    pub receiver: &'a BenchReceiver,
    pub secret: &'a str,
    /// A webhook whose backlog stays due through the runs (the scale part's
    /// slow endpoint): the wait for a quiet queue leaves it out.
    pub backlog_of: Option<uuid::Uuid>,
}

impl Bench<'_> {
    /// Run number `run` of `part`: commits the backlog in one statement and
    /// times the dispatcher until every delivery to a healthy endpoint was
    /// received, then until the database has recorded each as a success.
    pub async fn drain(&self, part: &Part, run: usize) -> anyhow::Result<DrainFigures> {
        let (store, receiver) = (self.store, self.receiver);
        wait_for_idle_except(store, Duration::from_secs(120), self.backlog_of).await?;
        let prefix = format!("{}{run}", part.prefix);
        let healthy_prefix = format!("{prefix}_ok");
        let healthy_n = part.endpoints - usize::from(part.hang);
        let healthy = add_endpoints(
            store,
            receiver,
            &healthy_prefix,
            healthy_n,
            self.secret,
            false,
        )
        .await?;
        if let Some(max_events) = part.batch {
            let batch = serde_json::json!({"maxEvents": max_events, "maxWaitMs": 1000});
            store
                .bench_webhook_shape_many(&healthy, None, Some(&batch))
                .await?;
        }
        let healthy_events = if part.hang {
            part.events / 2
        } else {
            part.events
        };
        let dead_prefix = format!("{prefix}_dead");
        let dead = if part.hang {
            add_endpoints(store, receiver, &dead_prefix, 1, self.secret, true).await?
        } else {
            Vec::new()
        };
        let hung_before = receiver.counters.hung.load(Ordering::Relaxed);
        let writes_before = store.bench_table_writes().await?;
        let before = receiver.delivered();
        let start = Instant::now();
        if part.hang {
            // One statement each; the dead endpoint's half first, so it sits
            // in front of the queue.
            store
                .bench_events_insert_many(
                    &dead_prefix,
                    1,
                    (part.events - healthy_events) as i32,
                    part.keys,
                )
                .await?;
        }
        store
            .bench_events_insert_many(
                &healthy_prefix,
                healthy_n as i32,
                healthy_events as i32,
                part.keys,
            )
            .await?;
        let committed = Instant::now();
        let mut cpu = PgCpu::start(store).await?;
        let target = before + healthy_events as u64;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut sampled = Instant::now();
        while receiver.delivered() < target {
            anyhow::ensure!(
                Instant::now() < deadline,
                "drain did not finish in 10 minutes"
            );
            if let (Some(c), true) = (&mut cpu, sampled.elapsed() >= Duration::from_millis(200)) {
                c.sample(store).await?;
                sampled = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let received_all = Instant::now();
        // Confirm in the database: every healthy delivery recorded as success.
        while store.bench_delivery_count_success(&healthy).await? < healthy_events as i64 {
            anyhow::ensure!(Instant::now() < deadline, "outcomes were not recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let recorded = Instant::now();
        if let Some(c) = &mut cpu {
            c.sample(store).await?;
        }
        let writes = if part.count_writes {
            Some(settled_writes(store).await?)
        } else {
            None
        };
        let secs = (received_all - committed).as_secs_f64();
        let n = healthy_events as f64;
        let delta = writes
            .map(|w| -> [f64; 4] { std::array::from_fn(|i| (w[i] - writes_before[i]) as f64) });
        let figures = DrainFigures {
            deliveries: healthy_events as u64,
            commit_seconds: (committed - start).as_secs_f64(),
            seconds: secs,
            per_second: n / secs,
            recorded_seconds: (recorded - committed).as_secs_f64(),
            dead_endpoint_requests: receiver.counters.hung.load(Ordering::Relaxed) - hung_before,
            pg_cpu_ms_per_delivery: cpu.map(|c| c.seconds() * 1000.0 / n),
            // The events' own inserts are the producer's writes, not the drain's.
            row_writes_per_delivery: delta
                .map(|[ins, upd, _, del]| (ins - part.events as f64 + upd + del) / n),
            hot_update_share: delta.and_then(|[_, upd, hot, _]| (upd > 0.0).then(|| hot / upd)),
        };
        if let Some(&id) = dead.first() {
            // The dead endpoint and its backlog go, so that the next run
            // starts with every slot free.
            store.webhook_delete(id, &format!("{dead_prefix}0")).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while receiver.counters.hanging_now.load(Ordering::Relaxed) > 0 {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "requests to the dead endpoint were not given up"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(figures)
    }
}

/// Table write counters once every backend has reported them. A backend
/// that reported less than a second before it went idle reports the rest
/// 10 s later (PostgreSQL 15's PGSTAT_IDLE_INTERVAL), so wait that out.
async fn settled_writes(store: &Store) -> anyhow::Result<[i64; 4]> {
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    Ok(store.bench_table_writes().await?)
}
