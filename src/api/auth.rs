//! API tokens: HS256 JWTs whose `sub` is the owner and whose `role: admin`
//! opens the admin routes. Only HS256 is accepted (an `alg: none` or any
//! other algorithm is refused), and `exp` is required and checked against
//! the caller's `now` (the API's clock) with a few seconds of leeway for
//! clock skew.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use warp::http::HeaderMap;

use crate::config::TokenArgs;
use crate::web::ApiError;

/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;
/// Longest owner id a token may carry (owner ids are stored on every row).
pub const MAX_SUB_LEN: usize = 255;

/// The claims of an API token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The owner the token acts for.
    pub sub: String,
    /// `admin` opens the queue routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Issued-at; optional (docs/WEBHOOKS.md requires only `sub` and HS256).
    #[serde(default)]
    pub iat: i64,
    pub exp: i64,
}

/// Who is calling, once the token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub owner: String,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("POSTBOX_JWT_SECRET is not set: pass --jwt-secret or set POSTBOX_JWT_SECRET to the API's HS256 key")]
    NoSecret,
    #[error("--sub must be a non-empty owner id of at most {MAX_SUB_LEN} characters")]
    BadSub,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token for `sub`, valid from `now` (unix seconds) for `ttl`.
pub fn mint(
    secret: &str,
    sub: &str,
    admin: bool,
    ttl: Duration,
    now: i64,
) -> Result<String, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::NoSecret);
    }
    if sub.is_empty() || sub.chars().count() > MAX_SUB_LEN {
        return Err(TokenError::BadSub);
    }
    let claims = Claims {
        sub: sub.to_string(),
        role: admin.then(|| "admin".to_string()),
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
    };
    let key = EncodingKey::from_secret(secret.as_bytes())?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}

/// Checks the `Authorization: Bearer` header as of `now` (unix seconds).
/// Every failure is a 401 whose message says what was wrong, never which
/// part of the key matched.
pub fn authenticate(secret: &str, headers: &HeaderMap, now: i64) -> Result<Caller, ApiError> {
    let value = headers
        .get(warp::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::unauthorized(
                "Authorization header must be: Bearer <token>",
            ))
        }
    };
    if token.is_empty() || secret.is_empty() {
        return Err(ApiError::unauthorized("invalid token"));
    }
    let key = DecodingKey::from_secret(secret.as_bytes())
        .map_err(|_| ApiError::unauthorized("invalid token"))?;
    let mut validation = Validation::new(Algorithm::HS256);
    // `exp` is checked below against `now`, not the system clock.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => ApiError::unauthorized("token expired"),
            ErrorKind::InvalidAlgorithm => {
                ApiError::unauthorized("invalid token: only HS256 is accepted")
            }
            ErrorKind::InvalidSignature => ApiError::unauthorized("invalid token signature"),
            _ => ApiError::unauthorized("invalid token"),
        }
    })?;
    let claims = data.claims;
    if claims.exp < now.saturating_sub(LEEWAY_SECS as i64) {
        return Err(ApiError::unauthorized("token expired"));
    }
    if claims.sub.is_empty() || claims.sub.chars().count() > MAX_SUB_LEN {
        return Err(ApiError::unauthorized("invalid token: bad sub claim"));
    }
    Ok(Caller {
        owner: claims.sub,
        admin: claims.role.as_deref() == Some("admin"),
    })
}

/// `postbox token`: prints a token on the last line of stdout.
pub fn token_command(args: TokenArgs) -> anyhow::Result<()> {
    let secret = args.jwt_secret.unwrap_or_default();
    let now = crate::clock::Clock::now(&crate::clock::SystemClock).timestamp();
    let token = mint(&secret, &args.sub, args.admin, args.ttl, now)?;
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed "now": the checks take time as an input.
    const NOW: i64 = 1_800_000_000;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn a_minted_token_authenticates_its_owner() {
        let now = NOW;
        let t = mint("k", "user_7", false, Duration::from_secs(60), now).unwrap();
        let c = authenticate("k", &bearer(&t), NOW).unwrap();
        assert_eq!((c.owner.as_str(), c.admin), ("user_7", false));
        let t = mint("k", "ops", true, Duration::from_secs(60), now).unwrap();
        assert!(authenticate("k", &bearer(&t), NOW).unwrap().admin);
    }

    #[test]
    fn wrong_key_expired_and_garbage_are_401() {
        let now = NOW;
        let t = mint("k", "u", false, Duration::from_secs(60), now).unwrap();
        assert_eq!(
            authenticate("other", &bearer(&t), NOW).unwrap_err().status,
            401
        );
        let old = mint("k", "u", false, Duration::from_secs(1), now - 3600).unwrap();
        let e = authenticate("k", &bearer(&old), NOW).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (401, "token expired")
        );
        assert_eq!(
            authenticate("k", &bearer("abc.def.ghi"), NOW)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authenticate("k", &HeaderMap::new(), NOW)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        let now = NOW;
        let claims = Claims {
            sub: "u".into(),
            role: None,
            iat: now,
            exp: now + 60,
        };
        let key = EncodingKey::from_secret(b"k").unwrap();
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert_eq!(authenticate("k", &bearer(&t), NOW).unwrap_err().status, 401);
        // alg none: header {"alg":"none"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert_eq!(
            authenticate("k", &bearer(none), NOW).unwrap_err().status,
            401
        );
    }

    #[test]
    fn minting_needs_a_secret_and_a_subject() {
        let d = Duration::from_secs(1);
        assert!(matches!(
            mint("", "u", false, d, 0),
            Err(TokenError::NoSecret)
        ));
        assert!(matches!(
            mint("k", "", false, d, 0),
            Err(TokenError::BadSub)
        ));
    }
}
