//! The rate-limit part: one webhook limited to `LIMIT` requests per second,
//! a backlog far larger than 10 s of it, and `DISPATCHERS` dispatcher
//! processes (the bench's own plus extra ones) claiming it at once; the
//! receiver's count over `WINDOW` after a warm-up is the figure (target:
//! within 10 % of the limit, SPEC 7.1 / issue 15).

use std::time::{Duration, Instant};

use postbox::store::Store;

use super::add_endpoints;
use super::child::DispatcherProcess;
use super::receiver::BenchReceiver;
use super::report::RateLimitFigures;

/// The webhook's limit, requests per second.
pub const LIMIT: i32 = 50;
/// Dispatcher processes claiming at once.
pub const DISPATCHERS: usize = 3;
/// How long the receiver is counted, after `WARM_UP`.
const WINDOW: Duration = Duration::from_secs(10);
const WARM_UP: Duration = Duration::from_secs(2);

/// Runs the part; `extra` starts one more dispatcher process.
pub async fn run(
    store: &Store,
    receiver: &BenchReceiver,
    secret: &str,
    extra: impl Fn() -> anyhow::Result<DispatcherProcess>,
) -> anyhow::Result<RateLimitFigures> {
    let others: Vec<DispatcherProcess> = (1..DISPATCHERS)
        .map(|_| extra())
        .collect::<anyhow::Result<_>>()?;
    let hooks = add_endpoints(store, receiver, "ratelimit", 1, secret, false).await?;
    store.bench_webhook_rate_limit(hooks[0], LIMIT).await?;
    let backlog = LIMIT * 20;
    let before = receiver.delivered();
    store
        .bench_events_insert_many("ratelimit", 1, backlog, 0)
        .await?;
    let first = Instant::now();
    while receiver.delivered() == before {
        anyhow::ensure!(
            first.elapsed() < Duration::from_secs(60),
            "ratelimit: nothing delivered within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(WARM_UP).await;
    let start = receiver.delivered();
    let t = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let seen = receiver.delivered() - start;
    let per_second = seen as f64 / t.elapsed().as_secs_f64();
    for d in others {
        d.stop()?;
    }
    Ok(RateLimitFigures {
        limit: LIMIT,
        dispatchers: DISPATCHERS,
        per_second,
    })
}
