//! Start-up failures, provoked on purpose against the real binary: each
//! prints exactly one line on stderr that names the target and the next
//! step, never a password, and exits 2 for configuration, 1 otherwise.

use std::process::Command;

use crate::support::*;

/// A secret long enough for the API (32 bytes).
const JWT: &str = "startup-test-secret-of-32-bytes!";
/// Put in URLs to check that no message repeats it.
const PASSWORD: &str = "pw-never-printed";

pub(crate) struct Failed {
    pub code: i32,
    pub line: String,
}

/// Runs `postbox ARGS` with only `env` set (and PATH); it must fail with
/// exactly one line on stderr and nothing on stdout.
pub(crate) fn fails(args: &[&str], env: &[(&str, &str)]) -> Failed {
    let out = Command::new(env!("CARGO_BIN_EXE_postbox"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run postbox");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().expect("exited, not killed");
    assert_ne!(code, 0, "postbox {args:?} succeeded: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, not:\n{stderr}");
    assert!(lines[0].starts_with("postbox: "), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    Failed {
        code,
        line: lines[0].to_string(),
    }
}

fn serve(database_url: &str) -> Failed {
    fails(
        &["serve"],
        &[
            ("DATABASE_URL", database_url),
            ("POSTBOX_JWT_SECRET", JWT),
            ("POSTBOX_LISTEN", "127.0.0.1:0"),
        ],
    )
}

pub(crate) fn assert_says(f: &Failed, code: i32, parts: &[&str]) {
    assert_eq!(f.code, code, "exit code of: {}", f.line);
    for p in parts {
        assert!(f.line.contains(p), "`{p}` missing from: {}", f.line);
    }
}

/// `url` with its user (and a password) and database replaced.
fn as_user(url: &str, user: &str, database: &str) -> String {
    let (scheme_user, rest) = url.split_once('@').expect("user@host");
    let scheme = &scheme_user[..scheme_user.find("//").unwrap() + 2];
    let host = &rest[..rest.find('/').unwrap()];
    format!("{scheme}{user}:{PASSWORD}@{host}/{database}")
}

fn host_port(url: &str) -> String {
    let rest = url.split_once('@').unwrap().1;
    rest[..rest.find('/').unwrap()].to_string()
}

#[test]
fn nothing_listening_names_the_server_and_suggests_postbox_dev() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = serve(&format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/shop"));
    assert_says(
        &f,
        1,
        &[
            &format!("cannot reach PostgreSQL at 127.0.0.1:{port}"),
            "database shop",
            "connection refused",
            "postbox dev",
        ],
    );
    assert!(!f.line.contains("creating a new object"), "{}", f.line);
}

#[tokio::test]
async fn an_unknown_role_is_a_refused_login() {
    let db = TestDb::new().await;
    let f = serve(&as_user(&db.url, "nobody_startup_test", &db.name));
    assert_says(
        &f,
        1,
        &[
            &host_port(&db.url),
            "refused the login as role \"nobody_startup_test\"",
            "does not exist",
            "check the user and password in DATABASE_URL",
        ],
    );
}

#[tokio::test]
async fn a_missing_database_says_how_to_create_it() {
    let db = TestDb::new().await;
    let missing = format!("{}_missing", db.name);
    let f = serve(&as_user(&db.url, "postgres", &missing));
    assert_says(
        &f,
        1,
        &[
            &format!("database \"{missing}\" does not exist"),
            &host_port(&db.url),
            &format!("CREATE DATABASE {missing}"),
        ],
    );
}

#[tokio::test]
async fn a_role_without_create_rights_is_told_what_to_grant() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (role, empty) = (format!("{}_r", db.name), format!("{}_e", db.name));
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("CREATE DATABASE {empty}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    let f = serve(&as_user(&db.url, &role, &empty));
    for sql in [
        format!("DROP DATABASE {empty} WITH (FORCE)"),
        format!("DROP ROLE {role}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    assert_says(
        &f,
        1,
        &[
            &format!("role \"{role}\" may not create Postbox's tables in database \"{empty}\""),
            "permission denied",
            &format!("GRANT CREATE ON DATABASE {empty} TO {role}"),
        ],
    );
}

#[tokio::test]
async fn migrations_from_a_newer_version_are_refused() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO postbox_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
        )
        .await
        .unwrap();
    for command in ["serve", "migrate"] {
        let f = fails(
            &[command],
            &[
                ("DATABASE_URL", &db.url),
                ("POSTBOX_JWT_SECRET", JWT),
                ("POSTBOX_LISTEN", "127.0.0.1:0"),
            ],
        );
        assert_says(
            &f,
            1,
            &[
                &format!("database \"{}\"", db.name),
                "V999__from_the_future",
                "newer",
            ],
        );
    }
}

/// The commands that use a migrated database without migrating it.
fn without_migrating(url: &str) -> Vec<Failed> {
    let env = [
        ("DATABASE_URL", url),
        ("POSTBOX_JWT_SECRET", JWT),
        ("POSTBOX_LISTEN", "127.0.0.1:0"),
    ];
    vec![
        fails(&["serve", "--no-migrate"], &env),
        fails(&["maintain"], &env),
        fails(&["publish", "webhook.test", "{}", "--owner", "o"], &env),
    ]
}

#[tokio::test]
async fn an_unmigrated_database_says_run_postbox_migrate() {
    let db = TestDb::new().await;
    let empty = format!("{}_empty", db.name);
    let client = db.client().await;
    client
        .batch_execute(&format!("CREATE DATABASE {empty}"))
        .await
        .unwrap();
    let url = as_user(&db.url, "postgres", &empty);
    let failed = without_migrating(&url);
    // The history is there, the schema is not (dropped by hand): publish still says it.
    let bare = TestDb::new().await;
    bare.client()
        .await
        .batch_execute("DROP SCHEMA postbox CASCADE")
        .await
        .unwrap();
    let publish = fails(
        &["publish", "webhook.test", "{}", "--owner", "o"],
        &[("DATABASE_URL", &bare.url)],
    );
    client
        .batch_execute(&format!("DROP DATABASE {empty} WITH (FORCE)"))
        .await
        .unwrap();
    for f in failed {
        assert_says(
            &f,
            1,
            &[
                &format!(
                    "database \"{empty}\" on PostgreSQL at {}",
                    host_port(&db.url)
                ),
                "is not migrated",
                "run postbox migrate (or postbox serve, which migrates)",
            ],
        );
    }
    assert_says(
        &publish,
        1,
        &[
            "is not migrated",
            "\"postbox",
            "does not exist",
            "run postbox migrate",
        ],
    );
}

#[tokio::test]
async fn commands_that_do_not_migrate_refuse_a_newer_schema_too() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO postbox_schema_history (version, name, applied_on, checksum)
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
        )
        .await
        .unwrap();
    for f in without_migrating(&db.url) {
        assert_says(
            &f,
            1,
            &[
                &format!("database \"{}\"", db.name),
                "has migration V99__from_the_future applied, which this postbox does not know",
                "never an older binary on a newer schema",
            ],
        );
    }
}

#[tokio::test]
async fn a_damaged_migration_history_is_one_line_not_a_panic() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "UPDATE postbox_schema_history SET applied_on = 'yesterday' WHERE version = 1",
        )
        .await
        .unwrap();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("POSTBOX_JWT_SECRET", JWT),
        ("POSTBOX_LISTEN", "127.0.0.1:0"),
    ];
    for args in [&["migrate"][..], &["serve"], &["serve", "--no-migrate"]] {
        let f = fails(args, &env);
        assert_says(
            &f,
            1,
            &[
                "damaged migration history",
                "row 1: applied_on \"yesterday\" is not an RFC 3339 time",
                "repair that row of public.postbox_schema_history",
            ],
        );
    }
}

#[test]
fn an_address_no_interface_has_is_not_called_taken() {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to this host.
    let f = fails(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres"),
            ("POSTBOX_JWT_SECRET", JWT),
            ("POSTBOX_LISTEN", "192.0.2.1:3001"),
        ],
    );
    assert_says(
        &f,
        1,
        &[
            "cannot listen on 192.0.2.1:3001 (POSTBOX_LISTEN): no interface has that address",
            "use 127.0.0.1:3001 (this machine only) or 0.0.0.0:3001",
        ],
    );
    assert!(!f.line.contains("in use"), "{}", f.line);
}

#[tokio::test]
async fn a_taken_api_port_names_the_address_and_the_setting() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let f = fails(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("POSTBOX_JWT_SECRET", JWT),
            ("POSTBOX_LISTEN", &addr),
        ],
    );
    assert_says(
        &f,
        1,
        &[
            &format!("cannot listen on {addr} (POSTBOX_LISTEN)"),
            "in use",
            "set POSTBOX_LISTEN to a free address",
        ],
    );
}

#[test]
fn a_missing_or_short_jwt_secret_is_a_configuration_error() {
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    let f = fails(&["serve"], &[("DATABASE_URL", url)]);
    assert_says(
        &f,
        2,
        &[
            "POSTBOX_JWT_SECRET is not set",
            "openssl rand -hex 32",
            "--no-api",
        ],
    );
    let f = fails(
        &["serve"],
        &[("DATABASE_URL", url), ("POSTBOX_JWT_SECRET", PASSWORD)],
    );
    assert_says(
        &f,
        2,
        &[
            &format!("POSTBOX_JWT_SECRET is {} bytes long", PASSWORD.len()),
            "at least 32",
            "openssl rand -hex 32",
        ],
    );
}
