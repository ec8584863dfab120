//! Statements on `postbox.event_types`: the catalogue, and the admin
//! API's add, describe and retire. A retired type stays in the table (its
//! stored events and deliveries refer to it) but takes no new events.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{Store, StoreError};

/// One entry of the event catalogue (`postbox.event_types`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: String,
    pub description: String,
}

fn from_row(r: &Row) -> EventType {
    EventType {
        name: r.get("name"),
        description: r.get("description"),
    }
}

impl Store {
    /// The open types, by name (`sql/event_type_list.sql`).
    pub async fn event_type_list(&self) -> Result<Vec<EventType>, StoreError> {
        let rows = self.rows(statement!("event_type_list"), &[]).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Adds a type, or reopens a retired one; `None` when an open type of
    /// that name exists (`sql/event_type_insert.sql`).
    pub async fn event_type_insert(
        &self,
        name: &str,
        description: &str,
    ) -> Result<Option<EventType>, StoreError> {
        let row = self
            .row_opt(statement!("event_type_insert"), &[&name, &description])
            .await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Describes an open type; `None` when there is none of that name.
    pub async fn event_type_update(
        &self,
        name: &str,
        description: &str,
    ) -> Result<Option<EventType>, StoreError> {
        let row = self
            .row_opt(statement!("event_type_update"), &[&name, &description])
            .await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Retires an open type as of `now`; `None` when there is none of that name.
    pub async fn event_type_retire(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EventType>, StoreError> {
        let row = self
            .row_opt(statement!("event_type_retire"), &[&name, &now])
            .await?;
        Ok(row.as_ref().map(from_row))
    }
}
