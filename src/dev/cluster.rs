//! A private PostgreSQL cluster in a directory of its own, run with the
//! PostgreSQL server binaries installed on the machine (`initdb`, `pg_ctl`).
//! `postbox dev` keeps its database in one; the test harness starts a
//! throwaway one when no server answers.
//!
//! Layout of the directory: `data/` (the cluster, created by `initdb` on first
//! use and reused afterwards), `postgres.log`, `port` (the last port, tried
//! first next time) and the Unix socket. The server listens on 127.0.0.1 only
//! and trusts every local connection: it is for development, never production.
//! PostgreSQL refuses to run as root, so as root every binary runs as the
//! `postgres` user (`runuser -u postgres --`), which then owns the directory.

use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian and Ubuntu install the server binaries, one directory per major version.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";
/// Longest Unix socket path (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why a cluster could not be created, started or stopped. Each message says
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) in {DEBIAN_LIB}/*/bin or on PATH: \
         install them (Debian/Ubuntu: apt-get install postgresql) and run again"
    )]
    NotInstalled,
    #[error(
        "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
         run as an ordinary user, or install the server (Debian/Ubuntu: apt-get install postgresql), \
         which creates that user"
    )]
    NoPostgresUser,
    #[error(
        "the postgres user cannot write to {}: a parent directory is closed to it; \
         choose a data directory it can reach (for example --data-dir /tmp/postbox-dev)",
        .0.display()
    )]
    Unreachable(PathBuf),
    #[error(
        "another postbox dev (pid {pid}) is using {}; stop it or pass --data-dir",
        .dir.display()
    )]
    InUse { pid: String, dir: PathBuf },
    #[error(
        "cannot {what} {}: {source}; choose a writable --data-dir (e.g. /tmp/postbox-dev)",
        .path.display()
    )]
    DataDir {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} failed: {detail} (the server log is {}; delete {} to start over)", .log.display(), .dir.display())]
    Command {
        what: String,
        detail: String,
        log: PathBuf,
        dir: PathBuf,
    },
}

/// The installed server binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
}

impl Binaries {
    /// The newest major version under `/usr/lib/postgresql`, else `initdb`
    /// and `pg_ctl` on `PATH`.
    pub fn find() -> Result<Binaries, ClusterError> {
        Binaries::find_in(Path::new(DEBIAN_LIB), std::env::var_os("PATH"))
    }

    fn find_in(lib: &Path, path: Option<std::ffi::OsString>) -> Result<Binaries, ClusterError> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(lib)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((major, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(Binaries {
                initdb: bin.join("initdb"),
                pg_ctl: bin.join("pg_ctl"),
            });
        }
        let on_path = |name: &str| {
            path.as_ref().and_then(|paths| {
                std::env::split_paths(paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        };
        match (on_path("initdb"), on_path("pg_ctl")) {
            (Some(initdb), Some(pg_ctl)) => Ok(Binaries { initdb, pg_ctl }),
            _ => Err(ClusterError::NotInstalled),
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The cluster's directory; created if missing.
    pub dir: PathBuf,
    /// The TCP port; `None`: the last one used in `dir` if free, else a free one.
    pub port: Option<u16>,
    /// Extra server settings (`name`, `value`), e.g. `fsync=off` for tests.
    /// Values must not need shell quoting.
    pub settings: Vec<(String, String)>,
}

/// A running cluster. Dropping it leaves the server running: call `stop`.
/// It holds the directory's lock (`DIR/lock`) while it lives, so no other
/// process starts, adopts or stops the same cluster meanwhile.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    _lock: File,
    port: u16,
    bins: Binaries,
    as_root: bool,
    /// True when `initdb` ran in this call (a new, empty cluster).
    pub created: bool,
    /// True when the server was already running (left over from an earlier run).
    pub adopted: bool,
}

impl Cluster {
    /// Creates the cluster in `options.dir` unless it exists, and starts it
    /// unless it already runs. Blocks until the server accepts connections.
    pub fn start(options: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let bins = Binaries::find()?;
        let data_dir = |what| {
            let path = options.dir.clone();
            move |source| ClusterError::DataDir { what, path, source }
        };
        std::fs::create_dir_all(&options.dir).map_err(data_dir("create"))?;
        let dir = options.dir.canonicalize().map_err(data_dir("open"))?;
        let lock = lock_dir(&dir)?;
        let as_root = is_root();
        if as_root {
            prepare_for_postgres_user(&dir)?;
        }
        let mut cluster = Cluster {
            dir,
            _lock: lock,
            port: 0,
            bins,
            as_root,
            created: false,
            adopted: false,
        };
        if !cluster.data().join("PG_VERSION").exists() {
            cluster.initdb()?;
            cluster.created = true;
        }
        if let Some(port) = cluster.running_port() {
            cluster.port = port;
            cluster.adopted = true;
            return Ok(cluster);
        }
        cluster.port = match options.port {
            Some(p) => p,
            None => cluster
                .last_port()
                .filter(|p| port_free(*p))
                .map_or_else(free_port, Ok)?,
        };
        cluster.pg_ctl_start(&options.settings)?;
        // Best effort: only a preference for next time.
        let _ = std::fs::write(cluster.dir.join("port"), cluster.port.to_string());
        Ok(cluster)
    }

    /// Stops the server (fast shutdown: open sessions are ended) and waits.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let data = self.data();
        let args = [
            "stop",
            "-D",
            path_str(&data),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
        ];
        self.run("pg_ctl stop", &self.bins.pg_ctl, &args).map(drop)
    }

    /// True while a server runs in the directory (per `pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.running_port().is_some()
    }

    /// The superuser's URL of database `postgres` over TCP (no password: trust).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let data = self.data();
        let args = [
            "-D",
            path_str(&data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ];
        self.run("initdb", &self.bins.initdb, &args).map(drop)
    }

    fn pg_ctl_start(&self, settings: &[(String, String)]) -> Result<(), ClusterError> {
        // The socket lives in the directory, so nothing outside it is needed;
        // a path the shell or the kernel cannot take means TCP only.
        let socket = self.dir.to_string_lossy();
        let plain = socket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
        let socket = if plain && socket.len() + "/.s.PGSQL.65535.lock".len() <= MAX_SOCKET_PATH {
            socket.into_owned()
        } else {
            "''".to_string()
        };
        let mut opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket}",
            self.port
        );
        for (name, value) in settings {
            opts.push_str(&format!(" -c {name}={value}"));
        }
        let (data, log) = (self.data(), self.log());
        let args = [
            "start",
            "-D",
            path_str(&data),
            "-l",
            path_str(&log),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
        ];
        self.run("pg_ctl start", &self.bins.pg_ctl, &args).map(drop)
    }

    /// The port of the server running in the directory, if one runs.
    fn running_port(&self) -> Option<u16> {
        let data = self.data();
        let mut status = self.command(&self.bins.pg_ctl, &["status", "-D", path_str(&data)]);
        if !status.output().is_ok_and(|o| o.status.success()) {
            return None;
        }
        // postmaster.pid: pid, data directory, start time, port, ...
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn last_port(&self) -> Option<u16> {
        std::fs::read_to_string(self.dir.join("port"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.args(args);
        cmd
    }

    /// Runs a binary with its output captured; a failure carries its last lines.
    fn run(&self, what: &str, bin: &Path, args: &[&str]) -> Result<Output, ClusterError> {
        let failed = |detail: String| ClusterError::Command {
            what: what.to_string(),
            detail,
            log: self.log(),
            dir: self.dir.clone(),
        };
        let out = self
            .command(bin, args)
            .output()
            .map_err(|e| failed(format!("cannot run {}: {e}", bin.display())))?;
        if out.status.success() {
            return Ok(out);
        }
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = last[last.len().saturating_sub(2)..].join(" / ");
        Err(failed(format!("{} ({tail})", out.status)))
    }
}

/// Takes `DIR/lock` (an exclusive `flock`, released when the file closes,
/// also when the process dies) and writes this process's id into it, for
/// the message the next process prints.
fn lock_dir(dir: &Path) -> Result<File, ClusterError> {
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| ClusterError::DataDir {
            what: "create",
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = Some(pid.trim().to_string()).filter(|p| !p.is_empty());
            return Err(ClusterError::InUse {
                pid: pid.unwrap_or_else(|| "unknown".into()),
                dir: dir.to_path_buf(),
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(ClusterError::Io {
                what: "lock",
                path,
                source,
            })
        }
    }
    // Only a hint for the message above: a failure to write it is harmless.
    let _ = file.set_len(0);
    let _ = file.write_all(std::process::id().to_string().as_bytes());
    Ok(file)
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io { what, path, source }
}

fn path_str(p: &Path) -> &str {
    // Paths come from canonicalize of a directory we created: UTF-8 in practice.
    p.to_str().unwrap_or_default()
}

/// As root: the `postgres` user must exist, own the directory and reach it.
fn prepare_for_postgres_user(dir: &Path) -> Result<(), ClusterError> {
    let exists = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        return Err(ClusterError::NoPostgresUser);
    }
    let chown = Command::new("chown")
        .args(["-R", "postgres:", path_str(dir)])
        .status()
        .map_err(io_err("change the owner of", dir))?;
    let writable = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "test",
            "-w",
            path_str(dir),
            "-a",
            "-x",
        ])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !chown.success() || !writable {
        return Err(ClusterError::Unreachable(dir.to_path_buf()));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port nothing listens on right now (the kernel's pick).
fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_err("find a free port on", Path::new("127.0.0.1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_installed_major_version_wins_and_none_names_the_package() {
        let lib = std::env::temp_dir().join(format!("postbox-pglib-{}", uuid::Uuid::new_v4()));
        for major in ["9", "16", "10", "notes"] {
            std::fs::create_dir_all(lib.join(major).join("bin")).unwrap();
            std::fs::write(lib.join(major).join("bin/initdb"), "").unwrap();
        }
        let found = Binaries::find_in(&lib, None).unwrap();
        assert_eq!(found.initdb, lib.join("16/bin/initdb"));
        assert_eq!(found.pg_ctl, lib.join("16/bin/pg_ctl"));
        std::fs::remove_dir_all(&lib).unwrap();

        let none = Binaries::find_in(&lib, Some("/nonexistent".into())).unwrap_err();
        assert!(matches!(none, ClusterError::NotInstalled));
        assert!(
            none.to_string().contains("apt-get install postgresql"),
            "{none}"
        );
    }
}
