//! The migration history check: refinery records each applied migration in
//! `postbox_schema_history`; before migrating, and when a command runs
//! without migrating (`serve --no-migrate`, `maintain`, `publish`), the rows
//! are read once and refused when a newer version applied a migration this
//! binary does not know (an older binary never runs on a newer schema,
//! docs/OPERATIONS.md) or when a row is damaged (refinery would panic on it).

use super::{db, embedded, Store, StoreError};

/// What is wrong with the migration history, for `startup` to explain.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Migration `V{version}__{name}` is applied but not embedded here.
    #[error("migration V{version}__{name} is applied, which this postbox does not know")]
    Newer { version: i32, name: String },
    /// A row refinery cannot read: which version, which column, its value.
    #[error("postbox_schema_history row {version}: {column} {value:?} is not {expected}")]
    Damaged {
        version: i32,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Store {
    /// Refuses a history from a newer version or with a damaged row.
    /// `missing_ok`: a database without the history table passes (it is
    /// about to be migrated); otherwise its absence is the database error
    /// (SQLSTATE 42P01) that `startup` explains as "not migrated".
    pub async fn schema_check(&self, missing_ok: bool) -> Result<(), StoreError> {
        let client = self.client().await?;
        let st = statement!("schema_history_list");
        let rows = match client.query(st.text, &[]).await {
            Ok(rows) => rows,
            Err(e) if missing_ok && e.code().map(|c| c.code()) == Some("42P01") => return Ok(()),
            Err(e) => return Err(db(st.name)(e)),
        };
        let ours: Vec<i32> = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .collect();
        for row in rows {
            let version: i32 = row.get(0);
            let text = |i: usize| row.get::<_, Option<String>>(i);
            let damaged = |column, value: Option<String>, expected| {
                Err(StoreError::Schema(SchemaError::Damaged {
                    version,
                    column,
                    value: value.unwrap_or_else(|| "NULL".into()),
                    expected,
                }))
            };
            let Some(name) = text(1) else {
                return damaged("name", None, "a migration name");
            };
            let applied_on = text(2);
            let time = applied_on
                .as_deref()
                .map(chrono::DateTime::parse_from_rfc3339);
            if !matches!(time, Some(Ok(_))) {
                return damaged("applied_on", applied_on, "an RFC 3339 time");
            }
            let checksum = text(3);
            if checksum
                .as_deref()
                .map(str::parse::<u64>)
                .is_none_or(|c| c.is_err())
            {
                return damaged("checksum", checksum, "a number");
            }
            if !ours.contains(&version) {
                return Err(StoreError::Schema(SchemaError::Newer { version, name }));
            }
        }
        Ok(())
    }
}
