//! `postbox dev`, run as a new user runs it: the real binary starts a private
//! cluster, prints DATABASE_URL and a psql line; that line, run by a shell,
//! publishes an event whose delivery the binary prints as verified; SIGTERM
//! stops the cluster; a second start reuses the directory and the webhook.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver as Lines};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::startup::{assert_says, fails};

/// initdb and the first migrations take a few seconds on a busy machine.
const WAIT: Duration = Duration::from_secs(90);

struct Dev {
    child: Child,
    lines: Lines<String>,
    seen: Vec<String>,
    /// Everything on stderr, once the process has ended.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Dev {
    fn start(dir: &Path) -> Dev {
        Dev::start_on(dir, "127.0.0.1:0")
    }

    fn start_on(dir: &Path, listen: &str) -> Dev {
        let mut command = Command::new(env!("CARGO_BIN_EXE_postbox"));
        command.args(["dev", "--data-dir"]).arg(dir);
        Dev::spawn(command.args(["--listen", listen]))
    }

    /// `postbox dev` with its default data directory, run in `cwd`.
    fn start_in(cwd: &Path) -> Dev {
        let mut command = Command::new(env!("CARGO_BIN_EXE_postbox"));
        command.current_dir(cwd);
        Dev::spawn(command.args(["dev", "--listen", "127.0.0.1:0"]))
    }

    fn spawn(command: &mut Command) -> Dev {
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postbox dev");
        // Drained as it comes, so that logging never blocks on a full pipe.
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut text);
            text
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dev {
            child,
            lines,
            seen: vec![],
            stderr: Some(stderr),
        }
    }

    /// The next line of stdout that satisfies `want`.
    fn wait_for(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "postbox dev never printed {what}; its output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Runs the printed `psql` line in a shell, as a user pastes it.
    fn publish_as_printed(&mut self) {
        let psql = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with("psql "))
            .expect("a psql line")
            .trim()
            .to_string();
        let out = Command::new("sh").args(["-c", &psql]).output().unwrap();
        assert!(
            out.status.success(),
            "{psql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits for the process to end by itself; its exit code and stderr.
    fn exited(mut self) -> (i32, String) {
        let deadline = Instant::now() + WAIT;
        while matches!(self.child.try_wait(), Ok(None)) {
            assert!(Instant::now() < deadline, "postbox dev did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        let code = self
            .child
            .wait()
            .unwrap()
            .code()
            .expect("exited, not killed");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (code, stderr)
    }

    /// SIGTERM, then the exit and the farewell line.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        // (Drop then finds the process gone.)
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.wait_for("that PostgreSQL stopped", |l| {
            l.contains("PostgreSQL stopped")
        });
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "postbox dev exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "postbox dev did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    // A failed test still stops the cluster: SIGTERM lets postbox dev stop
    // it; SIGKILL only if that takes too long.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + WAIT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
    }
}

async fn demo_webhooks(url: &str) -> Vec<(uuid::Uuid, String)> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT id, url FROM postbox.webhooks WHERE owner_id = 'demo'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn dev_delivers_a_verified_webhook_stops_its_cluster_and_reuses_it() {
    let dir = std::env::temp_dir().join(format!("postbox-dev-test-{}", uuid::Uuid::new_v4()));
    let url_line = |l: &str| l.starts_with("DATABASE_URL=postgres://");
    let verified = |l: &str| l.starts_with("--- delivery") && l.ends_with(": signature verified");

    let mut dev = Dev::start(&dir);
    let first = dev.wait_for("the DATABASE_URL line", url_line);
    let url = first.trim_start_matches("DATABASE_URL=").to_string();
    assert!(dev.seen[0].contains("(new cluster)"), "{:?}", dev.seen);
    dev.wait_for("the psql line", |l| l.contains("psql "));
    dev.publish_as_printed();
    dev.wait_for("a verified delivery", verified);
    dev.stop();
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the cluster stopped"
    );
    assert!(
        tokio_postgres::connect(&url, NoTls).await.is_err(),
        "nothing answers at {url} any more"
    );

    let mut dev = Dev::start(&dir);
    let again = dev.wait_for("the DATABASE_URL line", url_line);
    assert!(dev.seen[0].contains("(reused)"), "{:?}", dev.seen);
    let url = again.trim_start_matches("DATABASE_URL=").to_string();
    let hooks = demo_webhooks(&url).await;
    assert_eq!(hooks.len(), 1, "registered once, re-pointed: {hooks:?}");
    assert_eq!(hooks[0].0, postbox::dev::DEMO_WEBHOOK_ID);
    let receiver_line = dev.wait_for("the receiver's URL", |l| l.contains("-> receiver"));
    assert!(
        receiver_line.ends_with(&hooks[0].1),
        "{receiver_line} vs {hooks:?}"
    );
    dev.wait_for("the psql line", |l| l.contains("psql "));
    dev.publish_as_printed();
    dev.wait_for("a verified delivery", verified);
    dev.stop();
    assert!(!dir.join("data/postmaster.pid").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_dev_on_one_directory_is_refused_and_leaves_the_first_running() {
    let dir = std::env::temp_dir().join(format!("postbox-dev-test-{}", uuid::Uuid::new_v4()));
    let verified = |l: &str| l.starts_with("--- delivery") && l.ends_with(": signature verified");
    let mut first = Dev::start(&dir);
    first.wait_for("the psql line", |l| l.contains("psql "));

    let dir_arg = dir.display().to_string();
    let second = fails(
        &["dev", "--data-dir", &dir_arg, "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_says(
        &second,
        1,
        &[
            &format!("another postbox dev (pid {}) is using", first.child.id()),
            "stop it or pass --data-dir",
        ],
    );
    // The refused one stopped nothing: the first still delivers.
    first.publish_as_printed();
    first.wait_for("a verified delivery", verified);
    first.stop();

    // A taken --listen names the flag (not the variable), and the cluster stops.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let third = Dev::start_on(&dir, &addr);
    let (code, stderr) = third.exited();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} (--listen): the address is in use"
        )) && stderr.contains("set --listen to a free address"),
        "{stderr}"
    );
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the cluster stopped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_dir_that_cannot_be_created_says_choose_a_writable_one() {
    let file = std::env::temp_dir().join(format!("postbox-dev-file-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, "").unwrap();
    let under_a_file = file.join("d").display().to_string();
    let f = fails(&["dev", "--data-dir", &under_a_file], &[]);
    let _ = std::fs::remove_file(&file);
    assert_says(
        &f,
        1,
        &[
            &format!("cannot create {under_a_file}"),
            "choose a writable --data-dir (e.g. /tmp/postbox-dev)",
        ],
    );
}

/// As root, PostgreSQL runs as the `postgres` user, who cannot enter a clone
/// under a closed directory (as /root, mode 700): the default data directory
/// moves to the temp directory and the first line says where.
#[tokio::test]
async fn as_root_a_closed_working_directory_moves_the_default_data_dir() {
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if String::from_utf8_lossy(&uid).trim() != "0" {
        return; // Not root: the server runs as this user and reaches the directory.
    }
    let closed = std::env::temp_dir().join(format!("postbox-closed-{}", uuid::Uuid::new_v4()));
    let clone = closed.join("clone");
    std::fs::create_dir_all(&clone).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();

    let mut dev = Dev::start_in(&clone);
    let moved = dev.wait_for("where the data went", |l| l.contains("using "));
    let dir = moved
        .split("using ")
        .nth(1)
        .and_then(|r| r.split(" instead").next())
        .expect("using DIR instead")
        .to_string();
    assert!(moved.contains("the postgres user cannot reach"), "{moved}");
    dev.wait_for("the DATABASE_URL line", |l| l.starts_with("DATABASE_URL="));
    dev.stop();
    assert!(
        !clone.join(".postbox-dev").exists(),
        "nothing left in the clone"
    );
    assert!(Path::new(&dir).join("data/PG_VERSION").exists(), "{dir}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&closed);
}
