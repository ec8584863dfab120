//! Portal sessions: opening a link starts one (a random cookie value,
//! stored as its SHA-256, with a CSRF token and an end); every other page
//! reads it from the cookie. The cookie is HttpOnly, SameSite=Lax,
//! Path=/portal, and Secure when the portal's base URL is https.

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use warp::http::HeaderMap;

use super::link::{random_token, token_hash};
use crate::api::auth::Caller;
use crate::config::PortalConfig;
use crate::store::{NewPortalSession, PortalSessionRow, Store, StoreError};

/// The session cookie's name.
pub const COOKIE: &str = "postbox_portal";
/// The form field (and `x-csrf-token` header) every mutating request carries.
pub const CSRF_FIELD: &str = "csrf";

/// A live session: who it acts for, and what identifies it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub row: PortalSessionRow,
}

impl Session {
    /// The API caller this session acts as: exactly its owner's token.
    pub fn caller(&self) -> Caller {
        Caller {
            owner: self.row.owner_id.clone(),
            admin: self.row.admin,
        }
    }

    /// Whether `sent` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, sent: Option<&str>) -> bool {
        sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.row.csrf_token.as_bytes())))
    }
}

/// The session cookie's value in `headers`, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(warp::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The live session of the request's cookie.
pub async fn current(
    store: &Store,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Option<Session>, StoreError> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let id_hash = token_hash(&value);
    Ok(store
        .portal_session_get(&id_hash, now)
        .await?
        .map(|row| Session { id_hash, row }))
}

/// Opens the link of `token`: the session and its cookie's value; `None`
/// when the link is unknown, used or expired.
pub async fn open(
    store: &Store,
    config: &PortalConfig,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, String)>, StoreError> {
    let value = random_token();
    let id_hash = token_hash(&value);
    let csrf = random_token();
    let ttl = chrono::Duration::from_std(config.session_ttl).unwrap_or(chrono::Duration::hours(1));
    let new = NewPortalSession {
        id_hash: &id_hash,
        csrf_token: &csrf,
        expires_at: now + ttl,
    };
    let row = store
        .portal_link_consume(&token_hash(token), now, &new)
        .await?;
    Ok(row.map(|row| (Session { id_hash, row }, value)))
}

/// The `Set-Cookie` value that stores `value` until `expires_at`.
pub fn set_cookie(
    config: &PortalConfig,
    value: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    let max_age = (expires_at - now).num_seconds().max(0);
    let secure = if config.secure() { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/portal; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that removes the cookie (sign out).
pub fn clear_cookie(config: &PortalConfig) -> String {
    let secure = if config.secure() { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_set_with_its_flags() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; postbox_portal=abc; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        let now = Utc::now();
        let mut c = PortalConfig::default();
        let plain = set_cookie(&c, "v", now + chrono::Duration::seconds(60), now);
        assert_eq!(
            plain,
            "postbox_portal=v; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        c.base_url = "https://h.example".into();
        assert!(set_cookie(&c, "v", now, now).ends_with("; Secure"));
        assert!(clear_cookie(&c).contains("Max-Age=0"));
    }
}
