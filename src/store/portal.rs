//! Statements on the portal's tables (`migrations/V8__portal.sql`):
//! single-use links, sessions, and the live tail's wake-up flag. Tokens are
//! stored only as SHA-256 hashes: a copy of the tables opens nothing.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// The channel the deliveries trigger notifies while a live tail watches.
pub const PORTAL_TAIL_CHANNEL: &str = "postbox_portal_tail";

/// A live portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSessionRow {
    /// The owner the session acts for (a token's `sub`).
    pub owner_id: String,
    /// Whether it has the operator view (a token's `role: admin`).
    pub admin: bool,
    /// What every form and mutating request must carry.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl PortalSessionRow {
    fn from_row(r: &tokio_postgres::Row) -> PortalSessionRow {
        PortalSessionRow {
            owner_id: r.get("owner_id"),
            admin: r.get("admin"),
            csrf_token: r.get("csrf_token"),
            expires_at: r.get("expires_at"),
        }
    }
}

/// A new session's identity: the hash of its cookie value, its CSRF token
/// and its end.
#[derive(Debug, Clone)]
pub struct NewPortalSession<'a> {
    pub id_hash: &'a [u8],
    pub csrf_token: &'a str,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Records a single-use link for `owner` (by its token's hash) valid
    /// until `expires_at`, after deleting up to 1,000 ended links and
    /// sessions (so the tables never grow with history).
    pub async fn portal_link_insert(
        &self,
        token_hash: &[u8],
        owner: &str,
        admin: bool,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SWEEP: i64 = 1_000;
        self.row(statement!("portal_expired_delete_many"), &[&now, &SWEEP])
            .await?;
        self.exec(
            statement!("portal_link_insert"),
            &[&token_hash, &owner, &admin, &expires_at],
        )
        .await?;
        Ok(())
    }

    /// Opens the link whose token hashes to `token_hash` and starts
    /// `session`, in one statement; `None` when the link is unknown,
    /// already used or expired.
    pub async fn portal_link_consume(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        session: &NewPortalSession<'_>,
    ) -> Result<Option<PortalSessionRow>, StoreError> {
        let row = self
            .row_opt(
                statement!("portal_link_consume"),
                &[
                    &token_hash,
                    &now,
                    &session.id_hash,
                    &session.csrf_token,
                    &session.expires_at,
                ],
            )
            .await?;
        Ok(row.as_ref().map(PortalSessionRow::from_row))
    }

    /// The live session whose cookie hashes to `id_hash`.
    pub async fn portal_session_get(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<PortalSessionRow>, StoreError> {
        let row = self
            .row_opt(statement!("portal_session_get"), &[&id_hash, &now])
            .await?;
        Ok(row.as_ref().map(PortalSessionRow::from_row))
    }

    /// Ends a session (sign out).
    pub async fn portal_session_delete(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.exec(statement!("portal_session_delete"), &[&id_hash])
            .await?;
        Ok(())
    }

    /// Keeps the deliveries trigger notifying [`PORTAL_TAIL_CHANNEL`] until `until`.
    pub async fn portal_tail_watch(&self, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec(statement!("portal_tail_watch"), &[&until])
            .await?;
        Ok(())
    }
}
