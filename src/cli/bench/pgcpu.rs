//! Postgres CPU time over a timed window, read from /proc: the user and
//! system time of every backend connected to the benchmark's database (the
//! dispatcher's sessions, the benchmark's own, autovacuum workers on it) and
//! of the server's background processes (WAL writer, checkpointer, ...),
//! found through `pg_stat_activity` (`Store::bench_server_pids`). Other
//! databases' backends on a shared server are left out, so other work on the
//! same server does not count. Only works when the server runs on this host
//! (its pids are in our /proc) and we may read their stat files.

use std::collections::HashMap;

use postbox::store::Store;

use super::child::{clock_ticks, proc_cpu};

pub struct PgCpu {
    /// pid -> CPU seconds at the window's start (0 for pids seen later).
    start: HashMap<i32, f64>,
    /// pid -> CPU seconds at the last sample. A process that exits in the
    /// window keeps its last sampled value.
    last: HashMap<i32, f64>,
    ticks: f64,
}

impl PgCpu {
    /// Starts a window; `None` when no server process can be read here.
    pub async fn start(store: &Store) -> anyhow::Result<Option<PgCpu>> {
        let ticks = clock_ticks();
        let mut start = HashMap::new();
        for pid in store.bench_server_pids().await? {
            if let Some(cpu) = cpu_seconds(pid, ticks) {
                start.insert(pid, cpu);
            }
        }
        if start.is_empty() {
            return Ok(None);
        }
        Ok(Some(PgCpu {
            last: start.clone(),
            start,
            ticks,
        }))
    }

    /// Reads every current server process once more (call it now and then
    /// during the window, and at its end).
    pub async fn sample(&mut self, store: &Store) -> anyhow::Result<()> {
        for pid in store.bench_server_pids().await? {
            if let Some(cpu) = cpu_seconds(pid, self.ticks) {
                self.last.insert(pid, cpu);
            }
        }
        Ok(())
    }

    /// CPU seconds the server spent in the window so far.
    pub fn seconds(&self) -> f64 {
        self.last
            .iter()
            .map(|(pid, cpu)| cpu - self.start.get(pid).copied().unwrap_or(0.0))
            .sum()
    }
}

/// utime + stime of a postgres process, in seconds; `None` if it is not a
/// postgres process of this host.
fn cpu_seconds(pid: i32, ticks: f64) -> Option<f64> {
    proc_cpu(pid, ticks)
        .filter(|(comm, _)| comm.starts_with("postgres"))
        .map(|(_, cpu)| cpu)
}
