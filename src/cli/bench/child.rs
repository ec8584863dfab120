//! The dispatcher under test, run exactly as in production: a child process
//! `postbox serve --no-api --no-maintenance`, so that its memory and CPU are
//! its own and can be read from /proc.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct DispatcherProcess {
    child: Child,
    peak_rss_kib: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
}

impl DispatcherProcess {
    pub fn start(
        database_url: &str,
        extra_env: &[(&str, String)],
    ) -> anyhow::Result<DispatcherProcess> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--no-api", "--no-maintenance", "--no-migrate"])
            .env("DATABASE_URL", database_url)
            .env("POSTBOX_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Ok(DispatcherProcess {
            child: cmd.spawn()?,
            peak_rss_kib: 0,
        })
    }

    /// CPU seconds used so far and the peak RSS (VmHWM) seen so far.
    pub fn usage(&mut self) -> Usage {
        let pid = self.child.id();
        let cpu_seconds = proc_cpu(pid as i32, clock_ticks())
            .map(|(_, cpu)| cpu)
            .unwrap_or(0.0);
        let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        self.peak_rss_kib = self.peak_rss_kib.max(hwm);
        Usage {
            cpu_seconds,
            peak_rss_kib: self.peak_rss_kib,
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<Usage> {
        let usage = self.usage();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "dispatcher exited with {status}");
                return Ok(usage);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        anyhow::bail!("dispatcher did not stop within 30 s of SIGTERM")
    }
}

impl Drop for DispatcherProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's command name and CPU time (utime + stime, in seconds) from
/// /proc/<pid>/stat; `None` if it cannot be read.
pub fn proc_cpu(pid: i32, ticks: f64) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks))
}

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    // _SC_CLK_TCK is 100 on every Linux we run on; getconf says so when present.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
