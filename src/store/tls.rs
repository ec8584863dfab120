//! TLS to PostgreSQL, chosen by `sslmode` (and `sslrootcert`) in
//! `DATABASE_URL` with libpq's meanings (PostgreSQL's documentation,
//! "libpq: SSL Support"), on the rustls that reqwest already uses.
//! docs/CONFIGURATION.md lists the modes; in short:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | absent, `disable` | never | - |
//! | `prefer` | when the server offers TLS | no |
//! | `require` | always | no (with `sslrootcert`: as `verify-ca`, as libpq) |
//! | `verify-ca` | always | chains to `sslrootcert` (or the system's roots) |
//! | `verify-full` | always | as `verify-ca`, and names the host of the URL |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` (the
//! default here, where libpq reads `~/.postgresql/root.crt`): the
//! platform's trust store. `allow` is refused (tokio-postgres cannot try
//! plaintext first).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// The connector every Postbox connection uses; plaintext when the URL asks
/// for no TLS.
pub type Tls = MakeRustlsConnect;

/// The stream of a connection made with [`Tls`].
pub type Stream = <Tls as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream;

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Parses `url` (a `postgres://` URL or `key=value` words) into the
/// connection settings and the TLS connector its `sslmode` asks for.
/// A bad URL is a [`StoreError::Config`]; an unknown `sslmode` or an
/// unreadable `sslrootcert` a [`StoreError::Tls`].
pub fn parse(url: &str) -> Result<(tokio_postgres::Config, Tls), StoreError> {
    let taken = take_params(url, &["sslmode", "sslrootcert"]).1;
    let value = |key: &str| {
        taken
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let root_file = value("sslrootcert");
    let mode = match value("sslmode") {
        None | Some("disable") => Mode::Disable,
        Some("prefer") => Mode::Prefer,
        // libpq: "if a root CA file exists, behave as verify-ca".
        Some("require") if root_file.is_some() => Mode::VerifyCa,
        Some("require") => Mode::Require,
        Some("verify-ca") => Mode::VerifyCa,
        Some("verify-full") => Mode::VerifyFull,
        Some(other) => {
            return Err(StoreError::Tls(format!(
                "sslmode={other} is not supported: use disable, prefer, require, verify-ca or verify-full"
            )))
        }
    };
    let mut config = settings(url)?;
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = match mode {
        Mode::Disable | Mode::Prefer | Mode::Require => None,
        Mode::VerifyCa | Mode::VerifyFull => Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_file)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| StoreError::Tls(format!("sslrootcert: {e}")))?,
        ),
    };
    let verifier = Arc::new(Verifier {
        provider: provider.clone(),
        chain,
        check_name: mode == Mode::VerifyFull,
    });
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// The trust anchors: the PEM file `sslrootcert` names, or the system's.
fn roots(file: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match file {
        None | Some("system") => {
            // Unreadable entries are skipped; none at all is an error below.
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Tls(format!("cannot read sslrootcert {path}: {e}")))?;
            store.add_parsable_certificates(certs);
        }
    }
    if store.is_empty() {
        return Err(StoreError::Tls(format!(
            "no CA certificates in {}: set sslrootcert to a PEM file holding the server's CA",
            file.unwrap_or("the system's trust store (install ca-certificates)")
        )));
    }
    Ok(store)
}

/// The connection settings of `url` without its TLS parameters (which
/// tokio-postgres alone cannot read): for messages that name the target.
pub fn settings(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    take_params(url, &["sslmode", "sslrootcert"])
        .0
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))
}

/// Removes the `keys` parameters from `url`, returning what is left and the
/// removed (key, value) pairs, values decoded. tokio-postgres knows neither
/// `sslrootcert` nor the `verify-*` modes, so they are read here.
fn take_params(url: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let mut taken = vec![];
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), taken);
        };
        let mut kept = vec![];
        for pair in query.split('&') {
            let key = pair.split('=').next().unwrap_or_default();
            if keys.contains(&key) {
                let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
                if let Some((k, v)) = decoded {
                    taken.push((k.into_owned(), v.into_owned()));
                }
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    // key=value words: these two values never need quoting in practice.
    let mut kept = vec![];
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if keys.contains(&k.trim()) => {
                taken.push((k.trim().to_string(), v.trim_matches('\'').to_string()))
            }
            _ => kept.push(word),
        }
    }
    (kept.join(" "), taken)
}

/// Checks the server's certificate as the mode asks. `chain` is `None` for
/// `prefer` and `require` (any certificate, as libpq); else the chain must
/// reach a trusted root, and with `check_name` (`verify-full`) the
/// certificate must name the host. The handshake's signatures are always
/// checked, with the provider's algorithms.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name after the chain: a name error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_of_both_url_forms() {
        let (rest, taken) = take_params(
            "postgres://u@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
            &["sslmode", "sslrootcert"],
        );
        assert_eq!(rest, "postgres://u@h:5/db?application_name=x");
        assert_eq!(
            taken,
            [
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/tmp/ca.pem".to_string())
            ]
        );
        let (rest, taken) = take_params("host=h sslmode=require dbname=d", &["sslmode"]);
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!(taken, [("sslmode".to_string(), "require".to_string())]);
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_negotiates() {
        let mode = |url: &str| parse(url).map(|(c, _)| c.get_ssl_mode());
        assert_eq!(mode("postgres://h/d").unwrap(), SslMode::Disable);
        assert_eq!(
            mode("postgres://h/d?sslmode=prefer").unwrap(),
            SslMode::Prefer
        );
        assert_eq!(
            mode("postgres://h/d?sslmode=require").unwrap(),
            SslMode::Require
        );
        let allow = mode("postgres://h/d?sslmode=allow")
            .unwrap_err()
            .to_string();
        assert!(allow.contains("sslmode=allow is not supported"), "{allow}");
        let missing = mode("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent.pem")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("cannot read sslrootcert /nonexistent.pem"),
            "{missing}"
        );
    }
}
