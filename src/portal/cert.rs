//! The verify page's certificate check: one TLS handshake with an https
//! endpoint (through the same SSRF rule as deliveries: a refused address is
//! never contacted), recording whether the chain verifies against the
//! system's roots, then the leaf certificate's subject, issuer and
//! validity. Nothing is sent over the connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

/// Time limit of each step (lookup, connect, handshake).
const STEP: Duration = Duration::from_secs(5);
/// Fewer days left than this is a warning.
pub const WARN_DAYS: i64 = 14;

/// What the page says about the certificate, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    /// It does not verify (untrusted chain, wrong name, expired).
    Invalid,
    /// It verifies, and expires within [`WARN_DAYS`] days.
    ExpiresSoon,
    Valid,
}

/// The endpoint's certificate, as read in one handshake.
#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub subject: String,
    pub issuer: String,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    /// Whole days until `not_after` (negative: expired).
    pub days_left: Option<i64>,
    /// Why the chain does not verify, as rustls says it.
    pub error: Option<String>,
    pub status: CertStatus,
}

/// The status from the verification outcome and the days left.
pub fn classify(verify_error: Option<&str>, days_left: Option<i64>) -> CertStatus {
    match (verify_error, days_left) {
        (Some(_), _) => CertStatus::Invalid,
        (None, Some(d)) if d < 0 => CertStatus::Invalid,
        (None, Some(d)) if d < WARN_DAYS => CertStatus::ExpiresSoon,
        _ => CertStatus::Valid,
    }
}

fn roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(store)
        })
        .clone()
}

/// Verifies like a browser would, records the outcome, and lets the
/// handshake finish either way so that the certificate can be shown.
#[derive(Debug)]
struct Recording {
    /// Checks the chain and the handshake's signatures, as a browser's would.
    chain: Arc<WebPkiServerVerifier>,
    outcome: Mutex<Option<String>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let error = self
            .chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .err()
            .map(|e| e.to_string());
        if let Ok(mut o) = self.outcome.lock() {
            *o = error;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// Connects to `url` (https) and reads its certificate. `Err` says why no
/// certificate could be read (refused target, DNS, connect, handshake).
pub async fn inspect(
    url: &url::Url,
    allow_private: bool,
    now: DateTime<Utc>,
) -> Result<CertReport, String> {
    crate::net::validate_target(url, allow_private).await?;
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(STEP, tokio::net::lookup_host((lookup_host.as_str(), port)))
            .await
            .map_err(|_| format!("DNS lookup of {host} timed out"))?
            .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?
            .collect();
    // The resolver's rule: never contact a non-public address unless allowed.
    let addr = addrs
        .into_iter()
        .find(|a| allow_private || crate::net::is_public(a.ip()))
        .ok_or_else(|| format!("{host} has no address this server may contact"))?;
    let tcp = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = WebPkiServerVerifier::builder_with_provider(roots(), provider.clone())
        .build()
        .map_err(|_| "this server has no trusted root certificates (install ca-certificates)")?;
    let verifier = Arc::new(Recording {
        chain,
        outcome: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(lookup_host.clone())
        .map_err(|_| format!("{host} is not a valid TLS server name"))?;
    let tls = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "the TLS handshake timed out".to_string())?
    .map_err(|e| format!("the TLS handshake failed: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the server sent no certificate")?
        .clone()
        .into_owned();
    let error = verifier.outcome.lock().ok().and_then(|o| o.clone());
    Ok(describe(leaf.as_ref(), error, now))
}

/// The report of a DER certificate and its verification outcome.
pub fn describe(der: &[u8], error: Option<String>, now: DateTime<Utc>) -> CertReport {
    use x509_cert::der::Decode;
    let (subject, issuer, not_before, not_after) = match x509_cert::Certificate::from_der(der) {
        Ok(c) => {
            let tbs = &c.tbs_certificate;
            let time = |t: &x509_cert::time::Time| {
                DateTime::<Utc>::from_timestamp(t.to_unix_duration().as_secs() as i64, 0)
            };
            (
                tbs.subject.to_string(),
                tbs.issuer.to_string(),
                time(&tbs.validity.not_before),
                time(&tbs.validity.not_after),
            )
        }
        Err(e) => (
            format!("unreadable certificate ({e})"),
            String::new(),
            None,
            None,
        ),
    };
    let days_left = not_after.map(|t| (t - now).num_days());
    let error = match (error, not_after) {
        (None, None) => Some("the certificate cannot be read".to_string()),
        (e, _) => e,
    };
    CertReport {
        status: classify(error.as_deref(), days_left),
        subject,
        issuer,
        not_before,
        not_after,
        days_left,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_verification_decide_the_status() {
        assert_eq!(classify(None, Some(90)), CertStatus::Valid);
        assert_eq!(classify(None, Some(13)), CertStatus::ExpiresSoon);
        assert_eq!(classify(None, Some(14)), CertStatus::Valid);
        assert_eq!(classify(None, Some(-1)), CertStatus::Invalid);
        assert_eq!(
            classify(Some("unknown issuer"), Some(300)),
            CertStatus::Invalid
        );
    }

    #[test]
    fn garbage_is_described_not_a_panic() {
        let r = describe(b"not a certificate", None, Utc::now());
        assert!(r.subject.starts_with("unreadable certificate"));
        assert_eq!(r.status, CertStatus::Invalid);
    }
}
