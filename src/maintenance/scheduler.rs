//! The maintenance loop: sleeps until the next instant of the cron schedule,
//! runs the jobs under the maintenance lock, repeats. Stops as soon as the
//! shutdown token fires (while sleeping at once; while working, between batches).

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{run_once_at, MaintenanceConfig};
use crate::store::{Store, StoreError};

pub(super) async fn run(
    store: Store,
    config: MaintenanceConfig,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let schedule = crate::config::parse_schedule(&config.schedule).map_err(StoreError::Config)?;
    tracing::info!(schedule = %config.schedule, "maintenance scheduler started");
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::warn!(schedule = %config.schedule, "the maintenance schedule has no future run");
            shutdown.cancelled().await;
            return Ok(());
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        let started = std::time::Instant::now();
        match run_once_at(&store, &config, Utc::now(), &shutdown).await {
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
