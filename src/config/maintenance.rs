//! The maintenance jobs' settings. A plain type the jobs import; it knows
//! nothing of the jobs themselves.

use std::time::Duration;

use super::{defaults, Schedule};

/// What the maintenance jobs need. Each default is a constant of
/// [`defaults`] (the same ones the command line shows); the environment
/// variable that sets a field is named there too.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Failing without success this long disables a webhook.
    pub disable_after: Duration,
    /// Successful deliveries, and events no delivery needs, are kept this long.
    pub retention_success: Duration,
    /// Failed deliveries (dead letters) are kept this long.
    pub retention_failed: Duration,
    /// Events are kept at least this long (replay needs them), even once
    /// no delivery needs them; zero: only as long as `retention_success`.
    pub retention_events: Duration,
    /// When the scheduler runs the jobs.
    pub schedule: Schedule,
    /// Rows per delete statement; a batch shorter than this ends the job.
    pub batch_size: i64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            disable_after: const { defaults::duration(defaults::DISABLE_AFTER) },
            retention_success: const { defaults::duration(defaults::RETENTION_SUCCESS) },
            retention_failed: const { defaults::duration(defaults::RETENTION_FAILED) },
            retention_events: const { defaults::duration(defaults::RETENTION_EVENTS) },
            schedule: Schedule::every_minute(),
            batch_size: defaults::MAINTENANCE_BATCH_SIZE,
        }
    }
}
