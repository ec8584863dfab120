//! TLS to PostgreSQL through the real binary, against a private cluster with
//! ssl on, a certificate from a test CA for the name `db.example`, and an
//! hba file that admits TCP connections only over TLS (`hostssl`): a
//! connection that gets in was encrypted. `sslmode` means what libpq says:
//! `require` encrypts without checking the certificate, `verify-ca` checks
//! the chain, `verify-full` the chain and the host name.

use std::path::Path;
use std::process::Command;

use crate::startup::{assert_says, fails};
use crate::support::cluster::Cluster;

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signed for `db.example`
/// (`server.pem`, `server.key`, mode 0600 as PostgreSQL requires).
pub(crate) fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=postbox test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=db.example"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:db.example\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        dir.join("hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
}

/// `postbox migrate` with `url`; its stdout on success.
fn migrate(url: &str) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_postbox"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[tokio::test]
async fn sslmode_require_encrypts_and_verify_full_checks_the_certificate() {
    let dir = Cluster::fresh_dir();
    certificates(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let (cert, key, hba, ca) = (
        file("server.pem"),
        file("server.key"),
        file("hba.conf"),
        file("ca.pem"),
    );
    let cluster = Cluster::new_in(
        &dir,
        &[
            ("ssl", "on"),
            ("ssl_cert_file", &cert),
            ("ssl_key_file", &key),
            ("hba_file", &hba),
        ],
    )
    .await;
    let url = cluster.url();

    // Without TLS the server's hba file turns the login away.
    let plain = fails(&["migrate"], &[("DATABASE_URL", &url)]);
    assert_says(&plain, 1, &["refused the login", "no encryption"]);

    for mode in ["require", "prefer"] {
        let done = migrate(&format!("{url}?sslmode={mode}"));
        assert!(
            done.as_deref()
                .is_ok_and(|o| o.contains("migrations up to date")),
            "sslmode={mode}: {done:?}"
        );
    }
    // The chain is good with the test CA; only the name differs (127.0.0.1, not db.example).
    let verify_ca = migrate(&format!("{url}?sslmode=verify-ca&sslrootcert={ca}"));
    assert!(verify_ca.is_ok(), "{verify_ca:?}");

    let unknown_ca = fails(
        &["migrate"],
        &[("DATABASE_URL", &format!("{url}?sslmode=verify-full"))],
    );
    let port = cluster.port();
    assert_says(
        &unknown_ca,
        1,
        &[
            &format!("TLS to PostgreSQL at 127.0.0.1:{port} failed"),
            "invalid peer certificate",
            "set sslrootcert=/path/to/ca.pem",
            "sslmode=require",
        ],
    );
    let wrong_name = fails(
        &["migrate"],
        &[(
            "DATABASE_URL",
            &format!("{url}?sslmode=verify-full&sslrootcert={ca}"),
        )],
    );
    assert_says(
        &wrong_name,
        1,
        &["not valid for name \"127.0.0.1\"", "db.example"],
    );

    let unknown_mode = fails(
        &["migrate"],
        &[("DATABASE_URL", &format!("{url}?sslmode=allow"))],
    );
    assert_says(
        &unknown_mode,
        2,
        &["DATABASE_URL: sslmode=allow is not supported"],
    );
}
