//! Start-up failures as one line each: what failed, the target (host, port,
//! database, role; never a password) and what to do next. `main` prints the
//! line and exits with its code: 2 for a setting that is wrong on its face
//! (missing or too short JWT secret, an unparsable URL or schedule), 1 for
//! what the world answered (database unreachable, login refused, database
//! missing, no permission, migrations from a newer version, a port taken).
//! docs/OPERATIONS.md lists every line and its remedy.

use std::error::Error;
use std::io;

use crate::error::AppError;
use crate::store::schema::SchemaError;
use crate::store::StoreError;

/// Shortest `POSTBOX_JWT_SECRET` accepted, in bytes: RFC 7518 section 3.2
/// requires an HS256 key of at least the hash's size, 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The command that makes a good secret; quoted in messages and docs.
const MAKE_SECRET: &str = "export POSTBOX_JWT_SECRET=$(openssl rand -hex 32)";

/// Checks the API's JWT secret: present and at least [`MIN_JWT_SECRET_BYTES`]
/// long. The error never contains the secret.
pub fn jwt_secret(value: Option<&str>) -> Result<String, AppError> {
    match value.filter(|s| !s.is_empty()) {
        None => Err(AppError::Config(format!(
            "POSTBOX_JWT_SECRET is not set: the API needs it to check tokens; \
             set it ({MAKE_SECRET}) or run with --no-api"
        ))),
        Some(s) if s.len() < MIN_JWT_SECRET_BYTES => Err(AppError::Config(format!(
            "POSTBOX_JWT_SECRET is {} bytes long, too short for HS256 (at least {MIN_JWT_SECRET_BYTES}, \
             RFC 7518 section 3.2): set a longer one ({MAKE_SECRET})",
            s.len()
        ))),
        Some(s) => Ok(s.to_string()),
    }
}

/// One start-up failure, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// One line, without a trailing newline.
    pub line: String,
    /// The process exit code: 2 for configuration, 1 otherwise.
    pub exit_code: i32,
}

/// Where the command was connecting: from its `DATABASE_URL`, password left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    database: String,
    role: String,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let config = crate::store::tls::settings(url).ok()?;
        let host = match config.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let role = config.get_user().unwrap_or("postgres").to_string();
        Some(Target {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            database: config.get_dbname().unwrap_or(&role).to_string(),
            role,
        })
    }

    fn server(&self) -> String {
        format!("PostgreSQL at {}:{}", self.host, self.port)
    }
}

/// Explains `error` (a whole chain of causes) for a command that used
/// `database_url`. Unknown failures keep their own text, each cause once.
pub fn explain(error: &(dyn Error + 'static), database_url: Option<&str>) -> Explained {
    let target = database_url.and_then(Target::parse);
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = recognise(e, target.as_ref()) {
            return found;
        }
        cause = e.source();
    }
    Explained {
        line: deduplicated(error),
        exit_code: 1,
    }
}

fn recognise(e: &(dyn Error + 'static), target: Option<&Target>) -> Option<Explained> {
    let config = |line: String| Some(Explained { line, exit_code: 2 });
    let world = |line: String| Some(Explained { line, exit_code: 1 });
    if let Some(app) = e.downcast_ref::<AppError>() {
        return match app {
            AppError::Config(msg) => config(msg.clone()),
            AppError::Bind {
                addr,
                setting,
                source,
            } => world(bind_line(*addr, setting, source)),
            // Transparent wrappers: their own node is not in the chain.
            AppError::Store(store) => recognise(store, target),
            AppError::Cluster(cluster) => world(cluster.to_string()),
            AppError::Dispatch(_) => None,
        };
    }
    match e.downcast_ref::<StoreError>() {
        Some(StoreError::Config(msg)) => {
            return config(format!(
                "DATABASE_URL is not a PostgreSQL URL ({msg}): write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        }
        Some(StoreError::Tls(msg)) => return config(format!("DATABASE_URL: {msg}")),
        Some(StoreError::Schema(schema)) => return world(schema_line(schema, target)),
        _ => {}
    }
    if let Some(r) = e.downcast_ref::<refinery::Error>() {
        return migration_line(r.kind(), target).and_then(world);
    }
    if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
        if let Some(db) = pg.as_db_error() {
            return database_line(db, target).and_then(world);
        }
        let text = pg.to_string();
        if text.starts_with("authentication error") {
            return world(auth_line(&text, target));
        }
        if text.starts_with("error performing TLS handshake") {
            let cause = pg.source().map(ToString::to_string).unwrap_or_default();
            return world(tls_line(&cause, target));
        }
        let io = pg.source().and_then(|s| s.downcast_ref::<io::Error>());
        let why = match io.map(io::Error::kind) {
            Some(io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
            Some(io::ErrorKind::TimedOut) => "no answer in time".to_string(),
            Some(_) => io.map(ToString::to_string).unwrap_or_default(),
            None if text.starts_with("timeout") => "no answer in time".to_string(),
            None => return None,
        };
        return world(unreachable_line(&why, target));
    }
    if e.downcast_ref::<crate::dev::cluster::ClusterError>()
        .is_some()
    {
        return world(e.to_string());
    }
    if let Some(deadpool_postgres::PoolError::Timeout(_)) =
        e.downcast_ref::<deadpool_postgres::PoolError>()
    {
        return world(unreachable_line("no answer within 10 s", target));
    }
    None
}

fn server(target: Option<&Target>) -> String {
    target.map_or("PostgreSQL".to_string(), Target::server)
}

fn unreachable_line(why: &str, target: Option<&Target>) -> String {
    let at = match target {
        Some(t) => format!("{} (database {})", t.server(), t.database),
        None => "PostgreSQL".to_string(),
    };
    format!(
        "cannot reach {at}: {why}; start PostgreSQL there or point DATABASE_URL at a running server \
         (for development, `postbox dev` starts a private one)"
    )
}

fn auth_line(message: &str, target: Option<&Target>) -> String {
    let who = target.map_or(String::new(), |t| format!(" as role {:?}", t.role));
    format!(
        "{} refused the login{who}: {message}; check the user and password in DATABASE_URL \
         (and pg_hba.conf on the server)",
        server(target)
    )
}

fn database_line(db: &tokio_postgres::error::DbError, target: Option<&Target>) -> Option<String> {
    let message = db.message();
    let (database, role) = target.map_or(("DATABASE", "ROLE"), |t| {
        (t.database.as_str(), t.role.as_str())
    });
    Some(match db.code().code() {
        // invalid_password, invalid_authorization_specification (unknown role, no pg_hba entry)
        "28P01" | "28000" => auth_line(message, target),
        // invalid_catalog_name
        "3D000" => format!(
            "database {database:?} does not exist on {}: create it (CREATE DATABASE {database}) \
             or fix the database name in DATABASE_URL",
            server(target)
        ),
        // insufficient_privilege
        "42501" => format!(
            "role {role:?} may not create Postbox's tables in database {database:?} on {} ({message}): \
             grant it (GRANT CREATE ON DATABASE {database} TO {role}; GRANT CREATE ON SCHEMA public TO {role}), \
             or run `postbox migrate` as the database owner and start with --no-migrate",
            server(target)
        ),
        // invalid_schema_name, undefined_table: on Postbox's own objects, the
        // database was never migrated (publish, maintain, serve --no-migrate).
        "3F000" | "42P01" if message.contains("postbox") => format!(
            "{} is not migrated ({message}): run postbox migrate (or postbox serve, which migrates)",
            database_on(target)
        ),
        // cannot_connect_now (starting up or shutting down), too_many_connections
        "57P03" | "53300" => unreachable_line(message, target),
        _ => return None,
    })
}

/// `database "DB" on PostgreSQL at HOST:PORT`, or `the database`.
fn database_on(target: Option<&Target>) -> String {
    target.map_or("the database".to_string(), |t| {
        format!("database {:?} on {}", t.database, t.server())
    })
}

/// A migration applied by a newer version; `migration` is `VN__name`.
fn newer_line(migration: &dyn std::fmt::Display, target: Option<&Target>) -> String {
    format!(
        "{} has migration {migration} applied, which this postbox does not know: a newer \
         version migrated it; run that version or a newer one (never an older binary on a newer schema)",
        database_on(target)
    )
}

fn schema_line(e: &SchemaError, target: Option<&Target>) -> String {
    match e {
        SchemaError::Newer { version, name } => newer_line(&format!("V{version}__{name}"), target),
        SchemaError::Damaged { .. } => format!(
            "{} has a damaged migration history ({e}): repair that row of public.postbox_schema_history \
             (refinery writes applied_on as 2026-01-31T12:00:00Z and checksum as a number), \
             or on a development database recreate it",
            database_on(target)
        ),
    }
}

fn tls_line(cause: &str, target: Option<&Target>) -> String {
    if cause.contains("does not support TLS") {
        return format!(
            "{} does not offer TLS, which DATABASE_URL's sslmode requires: turn ssl on in the \
             server's postgresql.conf, or set sslmode=prefer (or disable) in DATABASE_URL",
            server(target)
        );
    }
    format!(
        "TLS to {} failed: {cause}; with sslmode=verify-full or verify-ca the server's certificate must \
         chain to sslrootcert (default: the system's trust store), and with verify-full name the host of \
         DATABASE_URL: set sslrootcert=/path/to/ca.pem in DATABASE_URL, or sslmode=require to encrypt \
         without checking the certificate",
        server(target)
    )
}

fn migration_line(kind: &refinery::error::Kind, target: Option<&Target>) -> Option<String> {
    let database = database_on(target);
    match kind {
        refinery::error::Kind::MissingVersion(m) => Some(newer_line(m, target)),
        refinery::error::Kind::DivergentVersion(applied, ours) => Some(format!(
            "{database} has migration {applied} applied, but this postbox's is {ours} (its text \
             differs): run the version that migrated it; on a development database, recreate it"
        )),
        _ => None,
    }
}

fn bind_line(addr: std::net::SocketAddr, setting: &str, source: &io::Error) -> String {
    let port = addr.port();
    // A setting that holds only a port (`--receiver-port`) is told to change the port.
    let free = if setting.to_ascii_lowercase().contains("port") {
        "port"
    } else {
        "address"
    };
    let (why, next) = match source.kind() {
        io::ErrorKind::AddrInUse => (
            "the address is in use (another postbox?)".to_string(),
            format!("stop what holds it (ss -ltnp 'sport = :{port}') or set {setting} to a free {free}"),
        ),
        io::ErrorKind::AddrNotAvailable => (
            "no interface has that address".to_string(),
            format!("use 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface) in {setting}"),
        ),
        io::ErrorKind::PermissionDenied => (
            "permission denied (ports below 1024 need privileges)".to_string(),
            format!("set {setting} to a port above 1023"),
        ),
        _ => (source.to_string(), format!("set {setting} to a free {free}")),
    };
    format!("cannot listen on {addr} ({setting}): {why}; {next}")
}

/// The chain's messages joined by ": ", each cause once: wrappers that
/// already quote their cause (`a: b` followed by `b`) are not repeated.
fn deduplicated(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = e.source();
    }
    line.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_never_carries_the_password() {
        let t = Target::parse("postgres://app:hunter2-secret@db.example:6543/shop").unwrap();
        assert_eq!(
            t,
            Target {
                host: "db.example".into(),
                port: 6543,
                database: "shop".into(),
                role: "app".into()
            }
        );
        let line = unreachable_line("connection refused", Some(&t));
        assert!(
            line.contains("db.example:6543") && line.contains("shop"),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn jwt_secret_must_be_set_and_long_enough() {
        let missing = jwt_secret(None).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("is not set"));
        let short = jwt_secret(Some("short-but-secret"))
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("16 bytes long") && !short.contains("short-but-secret"),
            "{short}"
        );
        let ok = "x".repeat(MIN_JWT_SECRET_BYTES);
        assert_eq!(jwt_secret(Some(&ok)).unwrap(), ok);
    }

    #[test]
    fn unknown_chains_print_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::other("inner"));
        assert_eq!(deduplicated(&e), "outer: inner");
    }
}
