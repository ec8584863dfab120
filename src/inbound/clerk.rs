//! Clerk's webhooks are signed by Svix, which is Standard Webhooks under
//! `svix-*` header names: this module only maps the names and reuses
//! `crate::signing` (one HMAC implementation for both directions).

use crate::signing::{self, SigningKey, VerifyError};

/// 5 minutes in both directions, as Svix's libraries do.
pub const TOLERANCE_SECS: i64 = signing::DEFAULT_TOLERANCE_SECS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClerkVerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("svix-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("svix-timestamp is too old")]
    TooOld,
    #[error("svix-timestamp is too new")]
    TooNew,
    #[error("svix-signature is malformed (entries are v1,<base64> separated by single spaces)")]
    Malformed,
    #[error("no matching signature")]
    NoMatch,
}

impl From<VerifyError> for ClerkVerifyError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::MissingHeader("webhook-id") => ClerkVerifyError::MissingHeader("svix-id"),
            VerifyError::MissingHeader("webhook-timestamp") => {
                ClerkVerifyError::MissingHeader("svix-timestamp")
            }
            VerifyError::MissingHeader(_) => ClerkVerifyError::MissingHeader("svix-signature"),
            VerifyError::BadTimestamp => ClerkVerifyError::BadTimestamp,
            VerifyError::TooOld => ClerkVerifyError::TooOld,
            VerifyError::TooNew => ClerkVerifyError::TooNew,
            VerifyError::Malformed => ClerkVerifyError::Malformed,
            VerifyError::NoMatch => ClerkVerifyError::NoMatch,
        }
    }
}

/// The three Svix headers as received (absent ones are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SvixHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// Verifies a Clerk delivery against the raw `body` as if the time were `now`.
/// Empty header values count as missing: an empty `svix-id` would make every
/// such event share one inbox key.
pub fn verify(
    key: &SigningKey,
    headers: SvixHeaders<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), ClerkVerifyError> {
    if present(headers.id).is_none() {
        return Err(ClerkVerifyError::MissingHeader("svix-id"));
    }
    signing::verify(
        key,
        headers.id,
        present(headers.timestamp),
        present(headers.signature),
        body,
        now,
        TOLERANCE_SECS,
    )
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The Standard Webhooks vectors carry a Svix cross-check (`svix_agrees`):
    /// replayed under `svix-*` names they must give the same outcomes.
    #[test]
    fn svix_outcomes_match_the_reference_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/standard_webhooks.json"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut checked = 0;
        for group in ["cases", "multi_signature_cases", "negative_cases"] {
            for case in v[group].as_array().unwrap() {
                let h = |name: &str| case["headers"][name].as_str();
                let Ok(key) = SigningKey::from_secret(case["secret"].as_str().unwrap()) else {
                    assert!(!case["verify"]["ok"].as_bool().unwrap());
                    continue;
                };
                let got = verify(
                    &key,
                    SvixHeaders {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                    },
                    case["payload"].as_str().unwrap().as_bytes(),
                    case["now"].as_i64().unwrap(),
                );
                assert_eq!(
                    got.is_ok(),
                    case["verify"]["ok"].as_bool().unwrap(),
                    "{group}/{}: {got:?}",
                    case["name"]
                );
                checked += 1;
            }
        }
        assert!(checked >= 30);
    }

    #[test]
    fn missing_headers_name_the_svix_header() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign("msg_1", 100, b"{}");
        let full = SvixHeaders {
            id: Some("msg_1"),
            timestamp: Some("100"),
            signature: Some(&sig),
        };
        assert!(verify(&key, full, b"{}", 100).is_ok());
        for (headers, name) in [
            (SvixHeaders { id: None, ..full }, "svix-id"),
            (
                SvixHeaders {
                    id: Some(""),
                    ..full
                },
                "svix-id",
            ),
            (
                SvixHeaders {
                    timestamp: None,
                    ..full
                },
                "svix-timestamp",
            ),
            (
                SvixHeaders {
                    signature: Some(""),
                    ..full
                },
                "svix-signature",
            ),
        ] {
            assert_eq!(
                verify(&key, headers, b"{}", 100),
                Err(ClerkVerifyError::MissingHeader(name))
            );
        }
        assert_eq!(
            verify(&key, full, b"{}", 100 + 301),
            Err(ClerkVerifyError::TooOld)
        );
        assert_eq!(
            verify(&key, full, b"{}", 100 - 301),
            Err(ClerkVerifyError::TooNew)
        );
    }
}
