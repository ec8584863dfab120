//! Standard Webhooks signing and verification: pure functions, no clock, no I/O.
//!
//! `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, where the key is
//! the base64-decoded part of a `whsec_` secret. Several signatures (a secret
//! rotation) are space-separated; a verifier accepts any `v1` match.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tolerance for `webhook-timestamp` in both directions, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Decodes with or without padding: secrets are often written without it.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("secret must start with whsec_")]
    MissingPrefix,
    #[error("secret is not valid base64 after whsec_")]
    BadBase64,
    #[error("secret key is empty")]
    EmptyKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp header is not a whole number of seconds")]
    BadTimestamp,
    #[error("timestamp is too old")]
    TooOld,
    #[error("timestamp is too new")]
    TooNew,
    #[error(
        "signature header is malformed (entries are version,signature separated by single spaces)"
    )]
    Malformed,
    #[error("no matching signature")]
    NoMatch,
}

/// A signing key decoded from a `whsec_` secret. Its Debug output hides the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`; padding is optional.
    pub fn from_secret(secret: &str) -> Result<SigningKey, SigningError> {
        let b64 = secret
            .strip_prefix("whsec_")
            .ok_or(SigningError::MissingPrefix)?;
        let key = LENIENT.decode(b64).map_err(|_| SigningError::BadBase64)?;
        if key.is_empty() {
            return Err(SigningError::EmptyKey);
        }
        Ok(SigningKey(key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// One signature entry: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Constant-time check of one base64 signature.
    fn matches(&self, msg_id: &str, timestamp: i64, body: &[u8], sig_b64: &str) -> bool {
        match STANDARD.decode(sig_b64) {
            Ok(sig) => self.mac(msg_id, timestamp, body).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes from the given RNG.
pub fn generate_secret<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// The `webhook-signature` value: one `v1,` entry per key, space-separated.
pub fn signature_header(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| k.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies Standard Webhooks headers against `body` as if the time were `now`
/// (unix seconds). The timestamp is checked before the signature, as the
/// reference library does; any `v1` entry matching passes.
pub fn verify(
    key: &SigningKey,
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let msg_id = msg_id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts_raw = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signature = signature.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    if ts_raw.is_empty() || !ts_raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: i64 = ts_raw.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if ts < now - tolerance_secs {
        return Err(VerifyError::TooOld);
    }
    if ts > now + tolerance_secs {
        return Err(VerifyError::TooNew);
    }
    let mut matched = false;
    for entry in signature.split(' ') {
        // Like the reference library, one malformed entry spoils the header.
        let (version, sig) = entry.split_once(',').ok_or(VerifyError::Malformed)?;
        if version == "v1" && !matched {
            matched = key.matches(msg_id, ts, body, sig);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/standard_webhooks.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).unwrap()
    }

    fn header<'a>(case: &'a Value, name: &str) -> Option<&'a str> {
        case["headers"].as_object().and_then(|h| {
            h.iter()
                .find(|(k, _)| k.as_str() == name)
                .and_then(|(_, v)| v.as_str())
        })
    }

    #[test]
    fn reproduces_every_reference_signature() {
        let v = vectors();
        let cases = v["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let key = SigningKey::from_secret(case["secret"].as_str().unwrap()).unwrap();
            let got = key.sign(
                case["msg_id"].as_str().unwrap(),
                case["timestamp"].as_i64().unwrap(),
                case["payload"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(
                got,
                case["expected_signature_header"].as_str().unwrap(),
                "{}",
                case["name"]
            );
        }
    }

    #[test]
    fn verification_outcomes_match_the_reference_library() {
        let v = vectors();
        let tol = v["tolerance_seconds"].as_i64().unwrap();
        let mut checked = 0;
        for group in ["cases", "multi_signature_cases", "negative_cases"] {
            for case in v[group].as_array().unwrap() {
                let secret = case["secret"].as_str().unwrap();
                let expect_ok = case["verify"]["ok"].as_bool().unwrap();
                let got = SigningKey::from_secret(secret).ok().map(|key| {
                    verify(
                        &key,
                        header(case, "webhook-id"),
                        header(case, "webhook-timestamp"),
                        header(case, "webhook-signature"),
                        case["payload"].as_str().unwrap().as_bytes(),
                        case["now"].as_i64().unwrap(),
                        tol,
                    )
                });
                let ok = matches!(got, Some(Ok(())));
                assert_eq!(ok, expect_ok, "{group}/{}: {:?}", case["name"], got);
                checked += 1;
            }
        }
        assert!(checked >= 30, "only {checked} cases");
    }

    #[test]
    fn rotation_header_carries_one_entry_per_key_and_each_verifies() {
        let a = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = SigningKey::from_secret(&generate_secret(&mut rand::rng())).unwrap();
        let h = signature_header(&[a.clone(), b.clone()], "msg_1", 1_700_000_000, b"{}");
        assert_eq!(h.split(' ').count(), 2);
        for k in [&a, &b] {
            verify(
                k,
                Some("msg_1"),
                Some("1700000000"),
                Some(&h),
                b"{}",
                1_700_000_000,
                300,
            )
            .unwrap();
        }
    }

    #[test]
    fn generated_secrets_hold_32_random_bytes() {
        let s = generate_secret(&mut rand::rng());
        let key = STANDARD.decode(s.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(s, generate_secret(&mut rand::rng()));
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(
            SigningKey::from_secret("abc").unwrap_err(),
            SigningError::MissingPrefix
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!!").unwrap_err(),
            SigningError::BadBase64
        );
        assert_eq!(
            SigningKey::from_secret("whsec_").unwrap_err(),
            SigningError::EmptyKey
        );
    }
}
