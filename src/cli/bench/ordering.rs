//! The ordering stress part (issue 16's correctness target, full size):
//! concurrent producers publish keyed events one per transaction (a few
//! roll back) to one webhook, several dispatcher processes deliver them to
//! `/flaky` (about 20 % of requests fail, some by hanging past the request
//! timeout), and once every committed event is delivered the receiver's log
//! is checked against the database: per key, the first successful receipts
//! are the events in `ordering_seq` order (commit order), with no gap and no
//! rolled-back event. Violations are counted and printed, never asserted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::RngExt;
use uuid::Uuid;

use postbox::store::bench::KEYED_PUBLISH_SQL;
use postbox::store::Store;

use super::child::DispatcherProcess;
use super::receiver::{BenchReceiver, Flakiness, FlakyRequest};
use super::report::OrderingFigures;
use super::REQUEST_TIMEOUT;

/// How `/flaky` answers: 2 % hang a second past the dispatchers' request
/// timeout (a timeout, then a 500 nobody reads), 18 % get a 500 at once.
pub const FLAKINESS: Flakiness = Flakiness {
    hang_per_mille: 20,
    fail_per_mille: 180,
    hang: REQUEST_TIMEOUT.saturating_add(Duration::from_secs(1)),
};
/// Dispatcher processes delivering at once (the bench's own plus extra ones).
pub const DISPATCHERS: usize = 3;
/// Producer connections.
pub const PRODUCERS: usize = 8;
/// One transaction in this many rolls back instead of committing.
const ROLLBACK_EVERY: usize = 50;
/// The webhook's retry schedule (seconds): short, and long enough that no
/// delivery is dead-lettered (21 failures in a row at 20 %: about 2e-15).
const RETRY_SCHEDULE: [i32; 20] = [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
/// How long the delivery may take before the part gives up waiting and
/// reports what it has (the undelivered count as gaps).
const DEADLINE: Duration = Duration::from_secs(600);
const OWNER: &str = "ordering0";

/// The part's size.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Transactions the producers run (committed and rolled back).
    pub events: usize,
    pub keys: usize,
}

impl Size {
    /// Issue 16's size, or a smaller one for `--quick`.
    pub fn new(quick: bool) -> Size {
        if quick {
            Size {
                events: 2_000,
                keys: 50,
            }
        } else {
            Size {
                events: 20_000,
                keys: 200,
            }
        }
    }
}

/// Runs the part; `extra` starts one more dispatcher process.
pub async fn run(
    store: &Store,
    receiver: &BenchReceiver,
    secret: &str,
    size: Size,
    extra: impl Fn() -> anyhow::Result<DispatcherProcess>,
) -> anyhow::Result<OrderingFigures> {
    let others: Vec<DispatcherProcess> = (1..DISPATCHERS)
        .map(|_| extra())
        .collect::<anyhow::Result<_>>()?;
    let hook = store
        .bench_webhook_insert(OWNER, &receiver.flaky_url(), secret, 1)
        .await
        .context("ordering: adding the webhook")?;
    store
        .bench_webhook_retry_schedule(hook, &RETRY_SCHEDULE)
        .await
        .context("ordering: setting the retry schedule")?;
    receiver.counters.flaky.lock().expect("flaky log").clear();

    let start = Instant::now();
    let rolled_back = produce(store, size).await?;
    let produced = start.elapsed();
    let committed = size.events - rolled_back.len();
    let deadline = start + DEADLINE;
    let mut delivered = 0;
    while delivered < committed as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        delivered = store
            .bench_delivery_count_success(&[hook])
            .await
            .context("ordering: counting successes")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    for d in others {
        d.stop()?;
    }
    let events = store
        .bench_events_ordering_list(OWNER)
        .await
        .context("ordering: reading commit order")?;
    let log = std::mem::take(&mut *receiver.counters.flaky.lock().expect("flaky log"));
    let check = check(&events, &log);
    Ok(OrderingFigures {
        events: committed,
        rolled_back: rolled_back.len(),
        keys: size.keys,
        producers: PRODUCERS,
        dispatchers: DISPATCHERS,
        produce_seconds: produced.as_secs_f64(),
        seconds,
        per_second: committed as f64 / seconds,
        requests: log.len(),
        requests_failed: log.iter().filter(|r| !r.ok).count(),
        requests_hung: log.iter().filter(|r| r.hung).count(),
        undelivered: committed.saturating_sub(delivered.max(0) as usize),
        keys_in_commit_order: check.keys_in_order,
        keys_seen: check.keys,
        order_violations: check.violations,
        gaps: check.gaps,
        rolled_back_received: check.foreign,
    })
}

/// The producers: `PRODUCERS` connections share `size.events` transactions;
/// each publishes one event with a random key of `size.keys` and commits,
/// or (one in `ROLLBACK_EVERY`) rolls back. Returns the rolled-back ids.
async fn produce(store: &Store, size: Size) -> anyhow::Result<HashSet<Uuid>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let mut client = store
            .bench_producer()
            .await
            .context("ordering: a producer connection")?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare(KEYED_PUBLISH_SQL)
                .await
                .context("ordering: preparing the publish")?;
            let mut rolled_back = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= size.events {
                    return Ok::<_, anyhow::Error>(rolled_back);
                }
                let key = format!("key{}", rand::rng().random_range(0..size.keys));
                let payload = serde_json::json!({"i": i, "key": key});
                let tx = client.transaction().await?;
                let id: Uuid = tx
                    .query_one(&stmt, &[&"project.updated", &payload, &OWNER, &key])
                    .await
                    .with_context(|| format!("ordering: publishing event {i}"))?
                    .get(0);
                if i % ROLLBACK_EVERY == ROLLBACK_EVERY - 1 {
                    tx.rollback().await?;
                    rolled_back.push(id);
                } else {
                    tx.commit().await?;
                }
            }
        }));
    }
    let mut rolled_back = HashSet::new();
    for t in tasks {
        rolled_back.extend(t.await.context("ordering: a producer task")??);
    }
    Ok(rolled_back)
}

/// What the receiver's log says against commit order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Checked {
    /// Keys with committed events.
    keys: usize,
    /// Keys whose first successful receipts are exactly their committed
    /// events in commit order.
    keys_in_order: usize,
    /// First successful receipts that came while an event committed before
    /// them on their key had not been received yet.
    violations: usize,
    /// Committed events never received successfully.
    gaps: usize,
    /// Requests for an event that was not committed (rolled back: not in
    /// the database).
    foreign: usize,
}

/// Checks `log` (arrival order) against `events` (the committed events: id
/// and key, in `ordering_seq` order); a rolled-back event is not among them.
fn check(events: &[(Uuid, String)], log: &[FlakyRequest]) -> Checked {
    // Per key, its events in commit order; per event, its key and place.
    let mut want: HashMap<&str, Vec<Uuid>> = HashMap::new();
    let mut place: HashMap<Uuid, (&str, usize)> = HashMap::new();
    for (id, key) in events {
        let line = want.entry(key.as_str()).or_default();
        place.insert(*id, (key.as_str(), line.len()));
        line.push(*id);
    }
    let mut got: HashMap<&str, Vec<Uuid>> = HashMap::new();
    // Per key: how many of its first events have all been received.
    let mut prefix: HashMap<&str, usize> = HashMap::new();
    let mut received: HashSet<Uuid> = HashSet::new();
    let mut out = Checked {
        keys: want.len(),
        ..Checked::default()
    };
    for r in log {
        let Some(&(key, at)) = r
            .event_id
            .parse::<Uuid>()
            .ok()
            .and_then(|id| place.get(&id))
        else {
            out.foreign += 1;
            continue;
        };
        let id = want[key][at];
        if !r.ok || !received.insert(id) {
            continue;
        }
        got.entry(key).or_default().push(id);
        let p = prefix.entry(key).or_default();
        if at > *p {
            out.violations += 1;
        }
        while want[key].get(*p).is_some_and(|e| received.contains(e)) {
            *p += 1;
        }
    }
    for (key, ids) in &want {
        let seen = got.get(key).map(Vec::as_slice).unwrap_or_default();
        out.gaps += ids.len() - seen.len();
        if seen == ids.as_slice() {
            out.keys_in_order += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: Uuid, ok: bool) -> FlakyRequest {
        FlakyRequest {
            event_id: id.to_string(),
            ok,
            hung: false,
        }
    }

    #[test]
    fn the_check_counts_skips_reorders_gaps_and_rolled_back_receipts() {
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let events: Vec<(Uuid, String)> = vec![
            (ids[0], "a".into()),
            (ids[1], "b".into()),
            (ids[2], "a".into()),
            (ids[3], "a".into()),
            (ids[4], "b".into()),
        ];
        let rolled_back = Uuid::new_v4();
        // In order, with failures and repeats in between: clean.
        let log = [
            req(ids[0], false),
            req(ids[1], true),
            req(ids[0], true),
            req(ids[0], true),
            req(ids[2], true),
            req(ids[4], false),
            req(ids[3], true),
            req(ids[4], true),
        ];
        assert_eq!(
            check(&events, &log),
            Checked {
                keys: 2,
                keys_in_order: 2,
                ..Checked::default()
            }
        );
        // Key a's third event before its second (a failure of the second
        // does not count as its receipt), key b's second never, and a
        // rolled-back event sent.
        let log = [
            req(ids[0], true),
            req(ids[2], false),
            req(ids[3], true),
            req(rolled_back, true),
            req(ids[2], true),
            req(ids[1], true),
        ];
        assert_eq!(
            check(&events, &log),
            Checked {
                keys: 2,
                keys_in_order: 0,
                violations: 1,
                gaps: 1,
                foreign: 1,
            }
        );
    }
}
