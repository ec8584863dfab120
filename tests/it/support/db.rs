//! One fresh database per test, cloned from a migrated template.
//!
//! The server is `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres).
//! When nothing answers there, a throwaway cluster is started with the
//! installed PostgreSQL binaries (initdb, pg_ctl) under the temp directory.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

/// `name` as a quoted SQL identifier (a database name cannot be a bound
/// parameter): the library's own quoting, so tests and `postbox bench`
/// quote alike.
pub fn ident(name: &str) -> String {
    postbox::store::bench::quote_identifier(name).expect("a valid database name")
}

pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        if answers(&url) {
            return url;
        }
        eprintln!("no PostgreSQL answers at {url}; starting a throwaway cluster");
        start_throwaway_cluster()
    })
}

fn answers(url: &str) -> bool {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            matches!(
                tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    tokio_postgres::connect(&url, NoTls)
                )
                .await,
                Ok(Ok(_))
            )
        })
    })
    .join()
    .unwrap_or(false)
}

/// A cluster of our own on a fixed port, created afresh under the temp
/// directory by the library's `dev::cluster` (what `postbox dev` uses).
fn start_throwaway_cluster() -> String {
    use postbox::dev::cluster::{Cluster, ClusterError, ClusterOptions};
    let port = 54329;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    if answers(&url) {
        return url;
    }
    let dir = std::env::temp_dir().join("postbox-test-pg");
    let _ = std::fs::remove_dir_all(&dir);
    let options = ClusterOptions {
        dir,
        port: Some(port),
        settings: vec![("fsync".into(), "off".into())],
    };
    match Cluster::start(&options) {
        Ok(cluster) => cluster.url(),
        Err(e @ ClusterError::NotInstalled) => panic!(
            "tests need PostgreSQL: none answers at DATABASE_URL, and {e}; \
             or set DATABASE_URL to a server"
        ),
        Err(e) => panic!("cannot start a throwaway PostgreSQL cluster: {e}"),
    }
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a database URL ends in /dbname");
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{db}{query}")
}

fn template_name() -> String {
    let mut h = Sha256::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        h.update(std::fs::read(&f).unwrap());
    }
    format!("postbox_tpl_{}", &hex::encode(h.finalize())[..12])
}

async fn ensure_template(admin_url: &str) -> String {
    let name = template_name();
    let (client, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
        .execute("SELECT pg_advisory_lock(7138400190000099)", &[])
        .await
        .unwrap();
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(&building)))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {}", ident(&building)))
            .await
            .unwrap();
        let store = postbox::store::Store::connect(&with_db(admin_url, &building), 1).unwrap();
        store
            .migrate()
            .await
            .expect("migrations apply to a fresh database");
        drop(store);
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&building],
            )
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                ident(&building),
                ident(&name)
            ))
            .await
            .unwrap();
    }
    client
        .execute("SELECT pg_advisory_unlock(7138400190000099)", &[])
        .await
        .unwrap();
    name
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin_url = server_url().to_string();
        let template = ensure_template(&admin_url).await;
        let name = format!("postbox_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
        tokio::spawn(conn);
        // CREATE DATABASE ... TEMPLATE fails while another session copies the same template.
        let mut tries = 0;
        loop {
            match client
                .batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE {}",
                    ident(&name),
                    ident(&template)
                ))
                .await
            {
                Ok(()) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20 + tries * 10)).await;
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        TestDb {
            url: with_db(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub fn store(&self) -> postbox::store::Store {
        postbox::store::Store::connect(&self.url, 8).unwrap()
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            ident(&name)
                        ))
                        .await;
                }
            })
        })
        .join();
    }
}
