//! Publishing from Rust inside the caller's own transaction: the same
//! statement as `postbox.publish()` in SQL, so the event commits or rolls
//! back with the business change beside it.

use crate::store::EVENT_PUBLISH_SQL;

pub use crate::store::PublishOptions;

/// Publishes one event in `tx` and returns its id (for a repeated
/// `(owner_id, options.idempotency_key)`, the first event's id). Postgres
/// refuses an unknown type, a payload that is not a JSON object or one over
/// 1 MiB, an empty owner, an ordering key outside 1-256 bytes and `supersede`
/// without an ordering key; the error aborts `tx`, as any failed statement
/// does. With an ordering key, `tx` holds that key's lock until it ends: a
/// concurrent publish of the same (owner, key) waits for it.
pub async fn publish(
    tx: &tokio_postgres::Transaction<'_>,
    event_type: &str,
    payload: &serde_json::Value,
    owner_id: &str,
    options: &PublishOptions<'_>,
) -> Result<uuid::Uuid, tokio_postgres::Error> {
    let row = tx
        .query_one(
            EVENT_PUBLISH_SQL,
            &options.params(&event_type, payload, &owner_id),
        )
        .await?;
    row.try_get(0)
}
