//! Statements of the benchmark (`postbox bench`): bulk fills and baselines.
//! They run only in the benchmark's own throwaway database.

use uuid::Uuid;

use super::{db, Store, StoreError};

/// The rows `Store::bench_history_insert_many` puts in (each with its own
/// event): a week of traffic as issue 12 describes it.
#[derive(Debug, Clone, Copy)]
pub struct HistoryShape {
    /// Successful deliveries of the history webhook.
    pub succeeded: i32,
    /// Its retries due a day later.
    pub future: i32,
    /// Its dead letters.
    pub dead: i32,
    /// Deliveries due now for the slow endpoint's webhook.
    pub backlog: i32,
}

/// Creates the database `name` on the server of `admin_url`.
pub async fn bench_database_create(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let sql = format!("CREATE DATABASE {}", quote_identifier(name)?);
    admin_execute(admin_url, &sql, "bench_database_create").await
}

/// Drops the database `name` on the server of `admin_url`, if it exists,
/// closing its sessions.
pub async fn bench_database_drop(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let sql = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_identifier(name)?
    );
    admin_execute(admin_url, &sql, "bench_database_drop").await
}

/// `name` as a quoted SQL identifier, since a database name cannot be bound
/// as a parameter: wrapped in double quotes, each double quote doubled (the
/// PostgreSQL manual, "Identifiers and Key Words"). Refuses what Postgres
/// would change or cannot hold: an empty name, a NUL byte, or more than 63
/// bytes (longer identifiers are silently truncated).
pub fn quote_identifier(name: &str) -> Result<String, StoreError> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(StoreError::Config(format!(
            "{name:?} cannot be a database name: 1 to 63 bytes, no NUL"
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Runs one statement that cannot run inside a transaction (CREATE or DROP
/// DATABASE) on a connection of its own.
async fn admin_execute(admin_url: &str, sql: &str, op: &'static str) -> Result<(), StoreError> {
    let (client, conn) = Store::connect_one(admin_url).await?;
    tokio::spawn(conn);
    client.batch_execute(sql).await.map_err(db(op))
}

impl Store {
    /// Adds one benchmark endpoint for `owner` at `url`; returns its id.
    pub async fn bench_webhook_insert(
        &self,
        owner: &str,
        url: &str,
        secret: &str,
        retry_delay: i32,
    ) -> Result<Uuid, StoreError> {
        let row = self
            .row(
                statement!("bench_webhook_insert"),
                &[&owner, &url, &secret, &retry_delay],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Sets the filter and the batch settings of the webhooks `ids`.
    pub async fn bench_webhook_shape_many(
        &self,
        ids: &[Uuid],
        filter: Option<&serde_json::Value>,
        batch: Option<&serde_json::Value>,
    ) -> Result<u64, StoreError> {
        self.exec(
            statement!("bench_webhook_shape_many"),
            &[&ids, &filter, &batch],
        )
        .await
    }

    /// Pauses webhook `id` of `owner` and gives it `count` dead letters,
    /// each with its own event; returns the rows inserted.
    pub async fn bench_dead_letters_insert_many(
        &self,
        id: Uuid,
        count: i32,
        owner: &str,
    ) -> Result<u64, StoreError> {
        self.exec(
            statement!("bench_dead_letters_insert_many"),
            &[&id, &count, &owner],
        )
        .await
    }

    /// Limits the webhook to `per_second` requests per second.
    pub async fn bench_webhook_rate_limit(
        &self,
        id: Uuid,
        per_second: i32,
    ) -> Result<(), StoreError> {
        self.exec(statement!("bench_webhook_rate_limit"), &[&id, &per_second])
            .await
            .map(|_| ())
    }

    /// Commits `count` events of about 340 bytes each for the owners
    /// `owner_prefix0..owners-1` in one statement; returns the rows inserted.
    /// `keys` = 0 leaves them unkeyed; otherwise event g (1-based) gets the
    /// ordering key `k{g % keys}`.
    pub async fn bench_events_insert_many(
        &self,
        owner_prefix: &str,
        owners: i32,
        count: i32,
        keys: i32,
    ) -> Result<u64, StoreError> {
        /// Pads `{"id": .., "name": .., "tags": .., "note": ..}` to about 340 bytes.
        const NOTE_CHARS: i32 = 265;
        self.exec(
            statement!("bench_events_insert_many"),
            &[&owner_prefix, &owners, &count, &NOTE_CHARS, &keys],
        )
        .await
    }

    /// Sets webhook `id`'s retry schedule: seconds before each retry
    /// (1 to 20 entries).
    pub async fn bench_webhook_retry_schedule(
        &self,
        id: Uuid,
        seconds: &[i32],
    ) -> Result<(), StoreError> {
        self.exec(statement!("bench_webhook_retry_schedule"), &[&id, &seconds])
            .await
            .map(|_| ())
    }

    /// `owner`'s keyed events as (id, ordering key), in `ordering_seq`
    /// order: for each key, the order its producers committed in.
    pub async fn bench_events_ordering_list(
        &self,
        owner: &str,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = self
            .rows(statement!("bench_events_ordering_list"), &[&owner])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Fills history in chunks of at most 500,000 rows of each kind, with
    /// the events trigger off (`shape`: what webhook `history` and the slow
    /// endpoint's webhook `slow` get; see sql/bench_history_insert_many.sql),
    /// then vacuums.
    pub async fn bench_history_insert_many(
        &self,
        history: Uuid,
        slow: Uuid,
        shape: HistoryShape,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute("ALTER TABLE postbox.events DISABLE TRIGGER events_before_insert")
            .await
            .map_err(db("bench_history_insert_many: disable trigger"))?;
        let chunk = 500_000;
        let mut left = [shape.succeeded, shape.future, shape.dead, shape.backlog];
        while left.iter().any(|n| *n > 0) {
            let [s, f, d, b] = left.map(|n| n.min(chunk));
            statement!("bench_history_insert_many")
                .execute(&client, &[&history, &s, &f, &d, &slow, &b])
                .await?;
            left = [left[0] - s, left[1] - f, left[2] - d, left[3] - b];
        }
        client
            .batch_execute("ALTER TABLE postbox.events ENABLE TRIGGER events_before_insert")
            .await
            .map_err(db("bench_history_insert_many: enable trigger"))?;
        self.bench_vacuum().await
    }

    /// What autovacuum would have done after a part's bulk work (the CI
    /// cluster runs with `autovacuum = off`): VACUUM ANALYZE of the queue's
    /// tables, then a CHECKPOINT, so the next timed part starts from a quiet
    /// disk and no dead index entries of the parts before it.
    pub async fn bench_vacuum(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        // One statement per call: VACUUM cannot run inside the implicit
        // transaction of a multi-statement query.
        for stmt in [
            "VACUUM ANALYZE postbox.events",
            "VACUUM ANALYZE postbox.deliveries",
            "VACUUM ANALYZE postbox.delivery_attempts",
            "CHECKPOINT",
        ] {
            client
                .batch_execute(stmt)
                .await
                .map_err(db("bench_vacuum"))?;
        }
        Ok(())
    }

    /// As `delivery_next_due`, leaving out webhook `except`'s deliveries.
    pub async fn bench_next_due_except(
        &self,
        except: Uuid,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let row = self
            .row(statement!("bench_next_due_except"), &[&except])
            .await?;
        Ok(row.get(0))
    }

    /// Creates the producer-cost baseline table (no trigger).
    pub async fn bench_plain_create(&self) -> Result<(), StoreError> {
        self.exec(statement!("bench_plain_create"), &[])
            .await
            .map(|_| ())
    }

    /// Successful deliveries of `webhooks`.
    pub async fn bench_delivery_count_success(&self, webhooks: &[Uuid]) -> Result<i64, StoreError> {
        let row = self
            .row(statement!("bench_delivery_count_success"), &[&webhooks])
            .await?;
        Ok(row.get(0))
    }

    /// The server processes serving this database, plus the server's
    /// background processes (`sql/bench_server_pids.sql`): whose CPU time
    /// counts as the database's.
    pub async fn bench_server_pids(&self) -> Result<Vec<i32>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(sql!("bench_server_pids"), &[])
            .await
            .map_err(db("bench_server_pids"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Row versions written to Postbox's tables so far: (inserted, updated,
    /// HOT-updated, deleted), as the statistics collector reports them.
    pub async fn bench_table_writes(&self) -> Result<[i64; 4], StoreError> {
        let client = self.client().await?;
        let r = client
            .query_one(sql!("bench_table_writes"), &[])
            .await
            .map_err(db("bench_table_writes"))?;
        Ok([r.get(0), r.get(1), r.get(2), r.get(3)])
    }

    /// A dedicated connection for one benchmark producer.
    pub async fn bench_producer(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, conn) = Store::connect_one(self.url()).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// The baseline statement producers run (prepared on their own
/// connections); they publish with [`super::EVENT_PUBLISH_SQL`].
/// `sql/bench_plain_insert.sql`: the baseline insert.
pub const PLAIN_INSERT_SQL: &str = sql!("bench_plain_insert");

/// `sql/bench_event_publish_keyed.sql`: one keyed publish ($1 type,
/// $2 payload, $3 owner, $4 ordering key; answers the event id), prepared on
/// the ordering part's producer connections.
pub const KEYED_PUBLISH_SQL: &str = sql!("bench_event_publish_keyed");

#[cfg(test)]
mod tests {
    use super::quote_identifier;

    #[test]
    fn identifiers_are_quoted_and_their_quotes_doubled() {
        assert_eq!(
            quote_identifier("postbox_bench_0a").unwrap(),
            r#""postbox_bench_0a""#
        );
        assert_eq!(
            quote_identifier(r#"a"; DROP DATABASE x; --"#).unwrap(),
            r#""a""; DROP DATABASE x; --""#
        );
        assert!(quote_identifier("").is_err());
        assert!(quote_identifier("a\0b").is_err());
        assert!(quote_identifier(&"x".repeat(64)).is_err());
        assert!(quote_identifier(&"x".repeat(63)).is_ok());
    }
}
