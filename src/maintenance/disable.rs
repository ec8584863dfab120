//! Auto-disable: turns off webhooks that have failed without any success for
//! POSTBOX_DISABLE_AFTER. The rule lives in `sql/webhook_disable_failing.sql`;
//! the reason is readable in `postbox.webhooks.disabled_reason` and the API.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::human;
use crate::config::MaintenanceConfig;
use crate::store::{Store, StoreError};

/// The `disabled_reason` written for `disable_after`, e.g. `no successful delivery for 5 days`.
pub fn disable_reason(disable_after: Duration) -> String {
    format!("no successful delivery for {}", human(disable_after))
}

pub(super) async fn run_once(
    store: &Store,
    config: &MaintenanceConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let window = chrono::Duration::from_std(config.disable_after)
        .map_err(|e| StoreError::Config(format!("POSTBOX_DISABLE_AFTER out of range: {e}")))?;
    let reason = disable_reason(config.disable_after);
    let disabled = store
        .webhook_disable_failing(now, now - window, &reason)
        .await?;
    for id in &disabled {
        tracing::warn!(webhook_id = %id, %reason, "webhook disabled");
    }
    if !disabled.is_empty() {
        metrics::counter!("postbox_webhooks_auto_disabled_total").increment(disabled.len() as u64);
    }
    Ok(disabled)
}
