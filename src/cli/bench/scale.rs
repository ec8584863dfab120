//! The scale part's database (issue 12): a second benchmark database filled
//! the way a week of traffic leaves it (successes, dead letters, a due
//! backlog of one endpoint that never answers), drained by a dispatcher of
//! its own. Its runs alternate with the empty database's drains, so the
//! ratio of the two is taken under the same machine noise.

use std::time::{Duration, Instant};

use uuid::Uuid;

use postbox::store::bench::HistoryShape;
use postbox::store::Store;

use super::child::DispatcherProcess;
use super::receiver::BenchReceiver;
use super::{add_endpoints, wait_for_idle_except, Sizes};

/// The filled database, its dispatcher and the slow endpoint's webhook.
pub struct ScaleDb {
    pub store: Store,
    pub dispatcher: DispatcherProcess,
    /// The webhook whose due backlog stays queued through the runs.
    pub slow: Uuid,
    /// The dispatcher's CPU seconds when the timed runs began.
    pub cpu_start: f64,
}

impl ScaleDb {
    /// Migrates the database at `url`, fills it (`sizes`), starts its
    /// dispatcher with `env` and waits until only the slow backlog is due.
    pub async fn fill(
        url: &str,
        sizes: &Sizes,
        receiver: &BenchReceiver,
        secret: &str,
        env: &[(&str, String)],
        request_timeout: Duration,
        say: &impl Fn(&str),
    ) -> anyhow::Result<ScaleDb> {
        let store = Store::connect(url, 16)?;
        store.migrate().await?;
        say(&format!(
            "scale: filling a second database with {} successes, {} dead letters, {} future retries, and a due backlog of {} for one endpoint that never answers",
            sizes.scale_finished, sizes.scale_dead, sizes.scale_future, sizes.scale_backlog
        ));
        let history = add_endpoints(&store, receiver, "history", 1, secret, false).await?;
        let slow = [store
            .bench_webhook_insert("slow0", &receiver.stall_url(0), secret, 3600)
            .await?];
        let t = Instant::now();
        store
            .bench_history_insert_many(
                history[0],
                slow[0],
                HistoryShape {
                    succeeded: sizes.scale_finished as i32,
                    future: sizes.scale_future as i32,
                    dead: sizes.scale_dead as i32,
                    backlog: sizes.scale_backlog as i32,
                },
            )
            .await?;
        say(&format!(
            "scale: filled in {:.0} s",
            t.elapsed().as_secs_f64()
        ));
        let mut dispatcher = DispatcherProcess::start(url, env)?;
        wait_for_idle_except(&store, Duration::from_secs(120), Some(slow[0])).await?;
        // Past its first requests to the slow endpoint (they time out after
        // `request_timeout` and open its breaker), so that the first timed
        // run of either database does not carry that start.
        tokio::time::sleep(request_timeout + Duration::from_secs(2)).await;
        let cpu_start = dispatcher.usage().cpu_seconds;
        Ok(ScaleDb {
            store,
            dispatcher,
            slow: slow[0],
            cpu_start,
        })
    }
}
