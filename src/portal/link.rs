//! Portal links: a random 32-byte token in a URL, stored only as its
//! SHA-256, opened at most once before it expires. Minted by the admin API
//! (`POST /api/portal/sessions`) and by `postbox portal-link`, both through
//! [`mint_link`].

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngExt as _;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Shortest and longest lifetime of a link, in seconds.
pub const LINK_TTL_SECONDS: (i64, i64) = (10, 86_400);
/// A link's lifetime when none is asked for (`defaults::PORTAL_LINK_TTL`).
pub const DEFAULT_LINK_TTL_SECONDS: i64 = 900;
/// The path a link opens (its token in the query).
pub const LOGIN_PATH: &str = "/portal/login";

/// What a link opens: whose portal, with the operator view or not, and
/// until when it can be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    owner: String,
    admin: bool,
    ttl_seconds: i64,
}

/// Why a link cannot be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error(
        "the owner id must be 1-{} characters, none of them NUL",
        crate::api::auth::MAX_SUB_LEN
    )]
    Owner,
    #[error("the lifetime must be {}-{} seconds", LINK_TTL_SECONDS.0, LINK_TTL_SECONDS.1)]
    Ttl,
}

impl LinkRequest {
    /// Checks the owner (as a token's `sub`: 1-255 characters) and the
    /// lifetime (10 s to 1 day).
    pub fn new(owner: &str, admin: bool, ttl: Duration) -> Result<LinkRequest, LinkError> {
        if owner.is_empty()
            || owner.chars().count() > crate::api::auth::MAX_SUB_LEN
            || owner.contains('\0')
        {
            return Err(LinkError::Owner);
        }
        let ttl_seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if !(LINK_TTL_SECONDS.0..=LINK_TTL_SECONDS.1).contains(&ttl_seconds) {
            return Err(LinkError::Ttl);
        }
        Ok(LinkRequest {
            owner: owner.to_string(),
            admin,
            ttl_seconds,
        })
    }
}

/// A minted link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `{base}/portal/login?token=...`
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A fresh random token: 32 bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the tables keep of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Records a new link and answers its URL under `base_url` (no trailing slash).
pub async fn mint_link(
    store: &Store,
    request: &LinkRequest,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<Link, StoreError> {
    let token = random_token();
    let expires_at = now + chrono::Duration::seconds(request.ttl_seconds);
    store
        .portal_link_insert(
            &token_hash(&token),
            &request.owner,
            request.admin,
            now,
            expires_at,
        )
        .await?;
    Ok(Link {
        url: format!("{base_url}{LOGIN_PATH}?token={token}"),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn requests_check_owner_and_lifetime() {
        let s = Duration::from_secs;
        assert!(LinkRequest::new("acme", false, s(900)).is_ok());
        assert_eq!(LinkRequest::new("", false, s(900)), Err(LinkError::Owner));
        assert_eq!(
            LinkRequest::new("a\0b", false, s(900)),
            Err(LinkError::Owner)
        );
        assert_eq!(
            LinkRequest::new(&"x".repeat(256), false, s(900)),
            Err(LinkError::Owner)
        );
        assert_eq!(LinkRequest::new("a", false, s(9)), Err(LinkError::Ttl));
        assert_eq!(LinkRequest::new("a", true, s(86_401)), Err(LinkError::Ttl));
    }
}
