//! Statements for the inbox of incoming webhooks (Stripe, Clerk). Postbox
//! only writes the inbox; applications consume it (see docs/INBOX.md).

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

impl Store {
    /// Stores one verified incoming event unless `(source, external_id)` is
    /// already there; `payload_json` is the JSON text, cast to jsonb by
    /// Postgres (large numbers keep their precision). Returns true when a row was inserted (and a NOTIFY on
    /// `postbox_inbox` sent with it).
    pub async fn inbox_insert(
        &self,
        source: &str,
        external_id: &str,
        event_type: &str,
        payload_json: &str,
        received_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = self
            .row(
                statement!("inbox_insert"),
                &[
                    &source,
                    &external_id,
                    &event_type,
                    &payload_json,
                    &received_at,
                ],
            )
            .await?;
        Ok(row.get(0))
    }
}
