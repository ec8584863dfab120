//! The benchmark's figures, their ceilings and targets, as a table or JSON.

use serde::Serialize;

#[derive(Debug, Serialize, Default)]
pub struct Ceilings {
    pub queue_per_second: Option<f64>,
    pub receiver_per_second: Option<f64>,
    pub plain_insert_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DrainFigures {
    pub deliveries: u64,
    /// Time to commit the backlog (one statement).
    pub commit_seconds: f64,
    /// From commit to the last delivery received.
    pub seconds: f64,
    pub per_second: f64,
    /// From commit to every outcome recorded in the database.
    pub recorded_seconds: f64,
    pub dead_endpoint_requests: u64,
}

#[derive(Debug, Serialize)]
pub struct SteadyFigures {
    pub rate: u32,
    pub seconds: f64,
    pub events: usize,
    pub missing: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ProducerFigures {
    pub plain_insert_per_second: f64,
    /// Dispatchers busy: producers skip NOTIFY.
    pub publish_per_second: f64,
    /// A dispatcher idle and waiting: every commit sends a NOTIFY.
    pub publish_notifying_per_second: f64,
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct ScaleFigures {
    pub finished_rows: usize,
    pub future_rows: usize,
    pub drain: DrainFigures,
}

#[derive(Debug, Serialize, Default)]
pub struct DispatcherFigures {
    pub peak_rss_mib: f64,
    pub cpu_seconds_per_10k: f64,
    pub deliveries: u64,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub figure: &'static str,
    pub target: &'static str,
    pub value: String,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cores: usize,
    pub events: usize,
    pub endpoints: usize,
    pub producers: usize,
    pub concurrency: usize,
    pub ceilings: Ceilings,
    pub drain: Option<DrainFigures>,
    pub steady: Option<SteadyFigures>,
    pub producer: Option<ProducerFigures>,
    pub scale: Option<ScaleFigures>,
    pub isolation: Option<DrainFigures>,
    pub dispatcher: DispatcherFigures,
    pub signatures_verified: u64,
    pub signatures_bad: u64,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(events: usize, endpoints: usize, producers: usize, concurrency: usize) -> Report {
        Report {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            events,
            endpoints,
            producers,
            concurrency,
            ceilings: Ceilings::default(),
            drain: None,
            steady: None,
            producer: None,
            scale: None,
            isolation: None,
            dispatcher: DispatcherFigures::default(),
            signatures_verified: 0,
            signatures_bad: 0,
            checks: Vec::new(),
        }
    }

    /// Compares the figures with their targets (the table of docs/PERFORMANCE.md).
    pub fn finish(&mut self) {
        let drain = self.drain.as_ref().map(|d| d.per_second);
        let mut checks = Vec::new();
        if let Some(d) = drain {
            checks.push(check(
                "drain",
                ">= 10,000 deliveries/s",
                format!("{d:.0}/s"),
                d >= 10_000.0,
            ));
        }
        if let Some(s) = &self.steady {
            checks.push(check(
                "steady latency",
                "p50 <= 2 ms, p99 <= 10 ms",
                format!("p50 {:.2} ms, p99 {:.2} ms", s.p50_ms, s.p99_ms),
                s.p50_ms <= 2.0 && s.p99_ms <= 10.0 && s.missing == 0,
            ));
        }
        if let Some(p) = &self.producer {
            checks.push(check(
                "producer cost",
                "publish >= 80 % of plain insert",
                format!("{:.0} %", p.ratio * 100.0),
                p.ratio >= 0.8,
            ));
        }
        if let (Some(s), Some(d)) = (&self.scale, drain) {
            let r = s.drain.per_second / d;
            checks.push(check(
                "scale",
                ">= 90 % of drain",
                format!("{:.0} %", r * 100.0),
                r >= 0.9,
            ));
        }
        if let (Some(i), Some(d)) = (&self.isolation, drain) {
            let r = i.per_second / d;
            checks.push(check(
                "isolation",
                ">= 90 % of drain",
                format!("{:.0} %", r * 100.0),
                r >= 0.9,
            ));
        }
        let rss = self.dispatcher.peak_rss_mib;
        checks.push(check(
            "memory",
            "peak RSS <= 100 MiB",
            format!("{rss:.1} MiB"),
            rss <= 100.0,
        ));
        if self.signatures_bad > 0 {
            checks.push(check(
                "signatures",
                "every sampled signature verifies",
                format!("{} bad", self.signatures_bad),
                false,
            ));
        }
        self.checks = checks;
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let frac = |v: f64, c: Option<f64>| {
            c.map(|c| format!(" ({:.0} % of ceiling)", v / c * 100.0))
                .unwrap_or_default()
        };
        out += &format!(
            "postbox bench: {} cores, {} events, {} endpoints, {} producers, concurrency {}\n\n",
            self.cores, self.events, self.endpoints, self.producers, self.concurrency
        );
        out += "ceilings\n";
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.0}/s")).unwrap_or_else(|| "-".into());
        out += &format!(
            "  queue alone (claim + complete, no HTTP)  {}\n",
            opt(self.ceilings.queue_per_second)
        );
        out += &format!(
            "  receiver alone (HTTP client loop)        {}\n",
            opt(self.ceilings.receiver_per_second)
        );
        out += &format!(
            "  plain insert (producers)                 {}\n\n",
            opt(self.ceilings.plain_insert_per_second)
        );
        let bound = match (
            self.ceilings.queue_per_second,
            self.ceilings.receiver_per_second,
        ) {
            (Some(q), Some(r)) => Some(1.0 / (1.0 / q + 1.0 / r)),
            _ => None,
        };
        if let Some(d) = &self.drain {
            out += &format!(
                "drain         {:.0} deliveries/s{}  ({} in {:.2} s; all recorded after {:.2} s)\n",
                d.per_second,
                frac(d.per_second, bound),
                d.deliveries,
                d.seconds,
                d.recorded_seconds
            );
        }
        if let Some(s) = &self.steady {
            out += &format!(
                "steady        {} events/s for {:.0} s: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} events, {} missing)\n",
                s.rate, s.seconds, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms, s.events, s.missing
            );
        }
        if let Some(p) = &self.producer {
            out += &format!(
                "producer      publish {:.0}/s vs plain insert {:.0}/s: {:.0} %  (publish while a dispatcher waits, NOTIFY per commit: {:.0}/s)\n",
                p.publish_per_second, p.plain_insert_per_second, p.ratio * 100.0, p.publish_notifying_per_second
            );
        }
        if let Some(s) = &self.scale {
            out += &format!(
                "scale         {:.0} deliveries/s with {} finished + {} future rows{}\n",
                s.drain.per_second,
                s.finished_rows,
                s.future_rows,
                self.drain
                    .as_ref()
                    .map(|d| format!(
                        " ({:.0} % of drain)",
                        s.drain.per_second / d.per_second * 100.0
                    ))
                    .unwrap_or_default()
            );
        }
        if let Some(i) = &self.isolation {
            out += &format!(
                "isolation     healthy endpoints {:.0} deliveries/s while one never answers ({} requests to it){}\n",
                i.per_second, i.dead_endpoint_requests,
                self.drain.as_ref().map(|d| format!(" ({:.0} % of drain)", i.per_second / d.per_second * 100.0)).unwrap_or_default()
            );
        }
        out += &format!(
            "dispatcher    peak RSS {:.1} MiB, {:.2} CPU s per 10,000 deliveries ({} deliveries)\n",
            self.dispatcher.peak_rss_mib,
            self.dispatcher.cpu_seconds_per_10k,
            self.dispatcher.deliveries
        );
        out += &format!(
            "signatures    {} sampled and verified, {} bad\n\ntargets\n",
            self.signatures_verified, self.signatures_bad
        );
        for c in &self.checks {
            let mark = match c.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "-",
            };
            out += &format!(
                "  {:<15} {:<32} {:<26} {}\n",
                c.figure, c.target, c.value, mark
            );
        }
        out
    }
}

fn check(figure: &'static str, target: &'static str, value: String, met: bool) -> Check {
    Check {
        figure,
        target,
        value,
        met: Some(met),
    }
}
