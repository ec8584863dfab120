//! The maintenance loop: sleeps until the next instant of the cron schedule,
//! runs the jobs under the maintenance lock, repeats. Stops as soon as the
//! shutdown token fires (while sleeping at once; while working, between batches).
//! "Now" comes from the clock it is given, so a shifted clock shifts the runs.

use tokio_util::sync::CancellationToken;

use super::run_once_at;
use crate::clock::SharedClock;
use crate::config::MaintenanceConfig;
use crate::store::{Store, StoreError};

pub(super) async fn run(
    store: Store,
    config: MaintenanceConfig,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let schedule = config.schedule.as_str();
    tracing::info!(%schedule, "maintenance scheduler started");
    loop {
        let now = clock.now();
        let Some(next) = config.schedule.cron().after(&now).next() else {
            tracing::warn!(%schedule, "the maintenance schedule has no future run");
            shutdown.cancelled().await;
            return Ok(());
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        let started = std::time::Instant::now();
        if !crate::clock::is_ready(&clock) {
            // The host's clock may be skewed: no rescue or retention by it.
            tracing::warn!("maintenance skipped: the database's clock has not been read yet");
            continue;
        }
        match run_once_at(&store, &config, clock.now(), &shutdown).await {
            Ok(report) if report.ran => {
                let summary = report.summary(&config).join("; ");
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "maintenance: {summary}"
                );
            }
            Ok(_) => tracing::debug!("maintenance skipped: another instance holds the lock"),
            Err(e) => {
                tracing::error!(error = %e, "maintenance run failed; the next one runs on schedule")
            }
        }
    }
}
