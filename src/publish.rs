//! Publishing from Rust inside the caller's own transaction: the same
//! statement as `postbox.publish()` in SQL, so the event commits or rolls
//! back with the business change beside it.

use crate::store::EVENT_PUBLISH_SQL;

/// Publishes one event in `tx` and returns its id (for a repeated
/// `(owner_id, idempotency_key)`, the first event's id). Postgres refuses an
/// unknown type, a payload that is not a JSON object or one over 1 MiB, and an
/// empty owner; the error aborts `tx`, as any failed statement does.
pub async fn publish(
    tx: &tokio_postgres::Transaction<'_>,
    event_type: &str,
    payload: &serde_json::Value,
    owner_id: &str,
    idempotency_key: Option<&str>,
) -> Result<uuid::Uuid, tokio_postgres::Error> {
    let row = tx
        .query_one(
            EVENT_PUBLISH_SQL,
            &[&event_type, payload, &owner_id, &idempotency_key],
        )
        .await?;
    row.try_get(0)
}
