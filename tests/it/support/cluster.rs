//! A private PostgreSQL cluster for one test: started with the installed
//! binaries (initdb, pg_ctl) in its own temp directory on a free port, with
//! the settings the test asks for (`max_prepared_transactions`, ...), and
//! stopped and removed when dropped. A test may `stop()` and `start()` it
//! again (the database going away mid-run); data survives a stop.
//!
//! Also the building blocks of `db.rs`'s throwaway cluster: finding the
//! binaries and running them (as the `postgres` user when the tests run as
//! root, since initdb refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running (or stopped) private cluster; removed with its files on drop.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    settings: Vec<(String, String)>,
    running: bool,
}

impl Cluster {
    /// Initialises a cluster in a fresh temp directory and starts it on a
    /// free loopback port with `settings` (`-c name=value` each), plus
    /// `fsync=off`. Panics when PostgreSQL is not installed.
    pub async fn new(settings: &[(&str, &str)]) -> Cluster {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = std::env::temp_dir().join(format!("postbox-cluster-{}", uuid::Uuid::new_v4()));
        let port = free_port();
        let setup_dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&setup_dir).expect("create the cluster directory");
            give_to_postgres(&setup_dir);
            initdb(&setup_dir.join("data"));
        })
        .await
        .expect("initdb task");
        let mut cluster = Cluster {
            dir,
            port,
            settings,
            running: false,
        };
        cluster.start().await;
        cluster
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

    /// Starts the cluster (again) and waits until it accepts connections.
    pub async fn start(&mut self) {
        if self.running {
            return;
        }
        let cmd = pg_ctl_start_command(&self.dir, self.port, &self.settings);
        run_async(cmd).await;
        self.running = true;
    }

    /// Stops the cluster (fast shutdown: sessions are cut) and waits until
    /// it is down. Connections fail from then on until `start`.
    pub async fn stop(&mut self) {
        if !self.running {
            return;
        }
        run_async(pg_ctl_stop_command(&self.dir, "fast")).await;
        self.running = false;
    }

    /// Creates database `name` and applies Postbox's migrations to it;
    /// returns its URL.
    pub async fn migrated_db(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the private cluster");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
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
        if self.running {
            let mut cmd = pg_ctl_stop_command(&self.dir, "immediate");
            let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The newest installed PostgreSQL binary `name`, or one on PATH.
pub fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    candidates.sort();
    candidates.pop().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.exists())
        })
    })
}

fn required_bin(name: &str) -> PathBuf {
    pg_bin(name).unwrap_or_else(|| {
        panic!(
            "tests need PostgreSQL's {name}: install it (Debian/Ubuntu: apt-get install postgresql) \
             or set DATABASE_URL to a server"
        )
    })
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
pub fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Hands `dir` to the `postgres` user when we are root (initdb and the
/// server run as that user then).
pub fn give_to_postgres(dir: &Path) {
    if is_root() {
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir)
            .status();
    }
}

fn run(mut cmd: Command) {
    let status = cmd.status().expect("run a PostgreSQL binary");
    assert!(status.success(), "{cmd:?} failed");
}

async fn run_async(cmd: Command) {
    let shown = format!("{cmd:?}");
    let status = tokio::process::Command::from(cmd)
        .status()
        .await
        .expect("run a PostgreSQL binary");
    assert!(status.success(), "{shown} failed");
}

/// `initdb` of a trust-authenticated UTF-8 cluster owned by `postgres`.
pub fn initdb(data: &Path) {
    let mut cmd = pg_command(&required_bin("initdb"));
    cmd.arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
        .stdout(Stdio::null());
    run(cmd);
}

/// `pg_ctl start -w` of `dir/data` on `port`, loopback only, sockets and
/// log in `dir`, `fsync=off`, plus `settings`.
pub fn pg_ctl_start_command(dir: &Path, port: u16, settings: &[(String, String)]) -> Command {
    let mut opts = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
        dir.display()
    );
    for (k, v) in settings {
        opts.push_str(&format!(" -c {k}={v}"));
    }
    let mut cmd = pg_command(&required_bin("pg_ctl"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-o")
        .arg(opts)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .stdout(Stdio::null());
    cmd
}

fn pg_ctl_stop_command(dir: &Path, mode: &str) -> Command {
    let mut cmd = pg_command(&required_bin("pg_ctl"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-m", mode, "-w", "stop"])
        .stdout(Stdio::null());
    cmd
}

/// Starts a cluster in `dir` on `port` and leaves it running (db.rs's
/// throwaway cluster, shared by the whole test run).
pub fn start_in(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir).unwrap();
    give_to_postgres(dir);
    initdb(&dir.join("data"));
    run(pg_ctl_start_command(dir, port, &[]));
}
