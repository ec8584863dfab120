//! API tokens: HS256 JWTs whose `sub` is the owner and whose `role: admin`
//! opens the admin routes. Only HS256 is accepted (an `alg: none` or any
//! other algorithm is refused). The registered claims of RFC 7519 section 4.1
//! are checked against the caller's `now` (the API's clock): `exp` is
//! required and must not have passed, `nbf` must have come, `iat` may not
//! lie in the future, each with [`LEEWAY_SECS`] of clock skew; when the
//! operator sets an issuer (POSTBOX_JWT_ISSUER) or an audience
//! (POSTBOX_JWT_AUDIENCE), `iss` must equal it and `aud` (a string or an
//! array) must contain it. A token carrying an `aud` is refused when no
//! audience is set: RFC 7519 says a recipient that does not find itself in
//! `aud` must reject the token.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use warp::http::HeaderMap;

use crate::web::ApiError;

/// Clock skew tolerated on `exp` (seconds).
pub const LEEWAY_SECS: u64 = 5;
/// Clock skew tolerated on `nbf` and `iat` (seconds): a token minted by a
/// host whose clock runs up to a minute ahead is accepted.
pub const FUTURE_LEEWAY_SECS: i64 = 60;
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
    /// Not before; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer; required to match when the API has one configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// What a token must satisfy besides its signature: the HS256 key and the
/// optional issuer and audience the operator requires.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenPolicy<'a> {
    pub secret: &'a str,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

impl<'a> TokenPolicy<'a> {
    /// A policy with only a key.
    pub fn key(secret: &'a str) -> TokenPolicy<'a> {
        TokenPolicy {
            secret,
            ..Default::default()
        }
    }
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
    mint_for(&TokenPolicy::key(secret), sub, admin, ttl, now)
}

/// Signs a token for `sub` that `policy` accepts: with its issuer and
/// audience when it has them (`postbox token` with POSTBOX_JWT_ISSUER or
/// POSTBOX_JWT_AUDIENCE set).
pub fn mint_for(
    policy: &TokenPolicy<'_>,
    sub: &str,
    admin: bool,
    ttl: Duration,
    now: i64,
) -> Result<String, TokenError> {
    let secret = policy.secret;
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
        nbf: None,
        iss: policy.issuer.map(str::to_string),
        aud: policy
            .audience
            .map(|a| serde_json::Value::String(a.to_string())),
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
pub fn authenticate(
    policy: &TokenPolicy<'_>,
    headers: &HeaderMap,
    now: i64,
) -> Result<Caller, ApiError> {
    let secret = policy.secret;
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
    // The time claims are checked below against `now`, not the system
    // clock; `aud` and `iss` below too, with messages that say which.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
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
    if claims.nbf.is_some_and(|nbf| nbf > now + FUTURE_LEEWAY_SECS) {
        return Err(ApiError::unauthorized("token not valid yet (nbf)"));
    }
    if claims.iat > now + FUTURE_LEEWAY_SECS {
        return Err(ApiError::unauthorized(
            "invalid token: issued in the future (iat)",
        ));
    }
    if let Some(want) = policy.issuer {
        if claims.iss.as_deref() != Some(want) {
            return Err(ApiError::unauthorized("invalid token: wrong issuer (iss)"));
        }
    }
    if !audience_ok(claims.aud.as_ref(), policy.audience) {
        return Err(ApiError::unauthorized(
            "invalid token: wrong audience (aud)",
        ));
    }
    if claims.sub.is_empty() || claims.sub.chars().count() > MAX_SUB_LEN {
        return Err(ApiError::unauthorized("invalid token: bad sub claim"));
    }
    Ok(Caller {
        owner: claims.sub,
        admin: claims.role.as_deref() == Some("admin"),
    })
}

/// Whether `aud` names `want` (RFC 7519 section 4.1.3): with no audience
/// configured only a token without `aud` passes.
fn audience_ok(aud: Option<&serde_json::Value>, want: Option<&str>) -> bool {
    use serde_json::Value;
    match (aud, want) {
        (None, None) => true,
        (Some(_), None) | (None, Some(_)) => false,
        (Some(Value::String(a)), Some(w)) => a == w,
        (Some(Value::Array(all)), Some(w)) => all.iter().any(|a| a.as_str() == Some(w)),
        (Some(_), Some(_)) => false,
    }
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
        let c = authenticate(&TokenPolicy::key("k"), &bearer(&t), NOW).unwrap();
        assert_eq!((c.owner.as_str(), c.admin), ("user_7", false));
        let t = mint("k", "ops", true, Duration::from_secs(60), now).unwrap();
        assert!(
            authenticate(&TokenPolicy::key("k"), &bearer(&t), NOW)
                .unwrap()
                .admin
        );
    }

    #[test]
    fn wrong_key_expired_and_garbage_are_401() {
        let now = NOW;
        let t = mint("k", "u", false, Duration::from_secs(60), now).unwrap();
        assert_eq!(
            authenticate(&TokenPolicy::key("other"), &bearer(&t), NOW)
                .unwrap_err()
                .status,
            401
        );
        let old = mint("k", "u", false, Duration::from_secs(1), now - 3600).unwrap();
        let e = authenticate(&TokenPolicy::key("k"), &bearer(&old), NOW).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (401, "token expired")
        );
        assert_eq!(
            authenticate(&TokenPolicy::key("k"), &bearer("abc.def.ghi"), NOW)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authenticate(&TokenPolicy::key("k"), &HeaderMap::new(), NOW)
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
            nbf: None,
            iss: None,
            aud: None,
        };
        let key = EncodingKey::from_secret(b"k").unwrap();
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert_eq!(
            authenticate(&TokenPolicy::key("k"), &bearer(&t), NOW)
                .unwrap_err()
                .status,
            401
        );
        // alg none: header {"alg":"none"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert_eq!(
            authenticate(&TokenPolicy::key("k"), &bearer(none), NOW)
                .unwrap_err()
                .status,
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
