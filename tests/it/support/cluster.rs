//! A private PostgreSQL cluster for one test, on the library's
//! `postbox::dev::cluster` (what `postbox dev` and `db.rs`'s throwaway server
//! use): its own temp directory, a free port, the settings the test asks for
//! (`max_prepared_transactions`, ...) plus `fsync=off`, stopped and removed
//! when dropped. A test may `stop()` and `start()` it again (the database
//! going away mid-run); data survives a stop.

use postbox::dev::cluster::{Cluster as Private, ClusterOptions};

/// A running (or stopped) private cluster; removed with its files on drop.
pub struct Cluster {
    options: ClusterOptions,
    port: u16,
    running: Option<Private>,
}

impl Cluster {
    /// Initialises a cluster in a fresh temp directory and starts it on a
    /// free loopback port with `settings`. Panics when PostgreSQL is not
    /// installed (the message names the package).
    pub async fn new(settings: &[(&str, &str)]) -> Cluster {
        Cluster::new_in(&Cluster::fresh_dir(), settings).await
    }

    /// A fresh temp directory for [`Cluster::new_in`], not yet created.
    pub fn fresh_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("postbox-cluster-{}", uuid::Uuid::new_v4()))
    }

    /// Like `new`, in `dir`, which may already hold files the settings name
    /// (certificates, an hba file); it is removed on drop.
    pub async fn new_in(dir: &std::path::Path, settings: &[(&str, &str)]) -> Cluster {
        let mut settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.push(("fsync".into(), "off".into()));
        let options = ClusterOptions {
            dir: dir.to_path_buf(),
            port: None,
            settings,
        };
        let running = start(options.clone()).await;
        let port = running.port();
        Cluster {
            options: ClusterOptions {
                port: Some(port),
                ..options
            },
            port,
            running: Some(running),
        }
    }

    /// The `postgres` database of this cluster.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Another database of this cluster.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the cluster (again, same port) and waits until it accepts connections.
    pub async fn start(&mut self) {
        if self.running.is_none() {
            self.running = Some(start(self.options.clone()).await);
        }
    }

    /// Stops the cluster (fast shutdown: sessions are cut) and waits until
    /// it is down. Connections fail from then on until `start`.
    pub async fn stop(&mut self) {
        if let Some(c) = self.running.take() {
            tokio::task::spawn_blocking(move || c.stop())
                .await
                .expect("pg_ctl stop task")
                .expect("the private cluster stops");
        }
    }

    /// Creates database `name` and applies Postbox's migrations to it;
    /// returns its URL.
    pub async fn migrated_db(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the private cluster");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {}", super::db::ident(name)))
            .await
            .expect("create the database");
        let url = self.url_for(name);
        let store = postbox::store::Store::connect(&url, 1).unwrap();
        store.migrate().await.expect("migrations apply");
        url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(c) = self.running.take() {
            let _ = c.stop();
        }
        let _ = std::fs::remove_dir_all(&self.options.dir);
    }
}

async fn start(options: ClusterOptions) -> Private {
    tokio::task::spawn_blocking(move || Private::start(&options))
        .await
        .expect("cluster start task")
        .unwrap_or_else(|e| panic!("cannot start a private PostgreSQL cluster: {e}"))
}
