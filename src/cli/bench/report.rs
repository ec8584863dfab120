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
    /// Postgres CPU (ms) per delivery from commit to the last delivery
    /// received (`pgcpu`: this database's backends and the background
    /// processes); `None` when the server is not on this host.
    pub pg_cpu_ms_per_delivery: Option<f64>,
    /// Row versions written to Postbox's tables per delivery over the run
    /// (inserts + updates + deletes), and the share of updates that were HOT.
    pub row_writes_per_delivery: Option<f64>,
    pub hot_update_share: Option<f64>,
}

/// One drain part: three (or more) fresh runs (fresh events, fresh webhooks)
/// and their spread. The median is the figure; the spread says how much a
/// run can differ from the next.
#[derive(Debug, Serialize)]
pub struct DrainRuns {
    pub endpoints: usize,
    pub runs: Vec<DrainFigures>,
    pub median_per_second: f64,
    pub min_per_second: f64,
    pub max_per_second: f64,
    /// The slowest run's time over the fastest's (1.0: no spread).
    pub slowest_over_fastest: f64,
    pub median_pg_cpu_ms_per_delivery: Option<f64>,
    pub median_row_writes_per_delivery: Option<f64>,
}

impl DrainRuns {
    pub fn new(endpoints: usize, runs: Vec<DrainFigures>) -> DrainRuns {
        let rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
        let (min, max) = rates
            .iter()
            .fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        DrainRuns {
            endpoints,
            median_per_second: median(rates.clone()).unwrap_or(f64::NAN),
            min_per_second: min,
            max_per_second: max,
            slowest_over_fastest: max / min,
            median_pg_cpu_ms_per_delivery: median(
                runs.iter()
                    .filter_map(|r| r.pg_cpu_ms_per_delivery)
                    .collect(),
            ),
            median_row_writes_per_delivery: median(
                runs.iter()
                    .filter_map(|r| r.row_writes_per_delivery)
                    .collect(),
            ),
            runs,
        }
    }

    /// One line: the median, its spread, and the database's cost.
    fn line(&self, name: &str, bound: Option<f64>) -> String {
        let mut out = format!(
            "{name:<13} median {:.0} deliveries/s{} over {} runs: min {:.0}, max {:.0}, slowest {:.2}x the fastest",
            self.median_per_second,
            bound
                .map(|c| format!(" ({:.0} % of ceiling)", self.median_per_second / c * 100.0))
                .unwrap_or_default(),
            self.runs.len(),
            self.min_per_second,
            self.max_per_second,
            self.slowest_over_fastest
        );
        if let Some(ms) = self.median_pg_cpu_ms_per_delivery {
            out += &format!("; Postgres CPU {ms:.3} ms/delivery");
        }
        if let Some(w) = self.median_row_writes_per_delivery {
            out += &format!("; {w:.2} row writes/delivery");
        }
        out + "\n"
    }
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The fan-out with and without a (matching) filter on each of its webhooks.
#[derive(Debug, Serialize)]
pub struct FanoutFigures {
    pub webhooks: usize,
    pub events: usize,
    pub runs: usize,
    /// Medians of the runs: fan-out statement time per event.
    pub unfiltered_us_per_event: f64,
    pub filtered_us_per_event: f64,
    /// Filtered over unfiltered (target: at most 2).
    pub ratio: f64,
}

/// Microseconds to build one delivery's body, per kind of body.
#[derive(Debug, Serialize)]
pub struct TemplateFigures {
    pub renders: usize,
    pub standard_us: f64,
    pub slack_us: f64,
    pub discord_us: f64,
    pub teams_us: f64,
    /// A custom `{"body": ...}` Jinja template, parsed and rendered.
    pub custom_us: f64,
}

impl TemplateFigures {
    /// The costliest template's extra time over the standard body.
    pub fn worst_extra_us(&self) -> f64 {
        [
            self.slack_us,
            self.discord_us,
            self.teams_us,
            self.custom_us,
        ]
        .into_iter()
        .fold(0f64, f64::max)
            - self.standard_us
    }
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

/// The recover part: one job over a webhook's dead letters.
#[derive(Debug, Serialize)]
pub struct RecoverFigures {
    pub dead_letters: i64,
    pub recovered: i64,
    pub batches: usize,
    pub longest_statement_ms: f64,
    pub total_seconds: f64,
}

/// The rate-limit part: what the receiver saw per second.
#[derive(Debug, Serialize)]
pub struct RateLimitFigures {
    pub limit: i32,
    pub dispatchers: usize,
    pub per_second: f64,
}

/// The ordering stress part: concurrent producers of keyed events, several
/// dispatchers, a flaky receiver; the receiver's log checked against commit
/// order.
#[derive(Debug, Serialize)]
pub struct OrderingFigures {
    /// Committed events (all keyed, one webhook).
    pub events: usize,
    /// Transactions rolled back after publishing.
    pub rolled_back: usize,
    pub keys: usize,
    pub producers: usize,
    pub dispatchers: usize,
    /// From the first transaction to the last commit.
    pub produce_seconds: f64,
    /// From the first transaction to every committed event recorded as
    /// delivered (or to the part's deadline).
    pub seconds: f64,
    /// Committed events over `seconds`.
    pub per_second: f64,
    /// Requests the receiver got, failed (non-2xx or hung), and hung past
    /// the request timeout.
    pub requests: usize,
    pub requests_failed: usize,
    pub requests_hung: usize,
    /// Committed events not recorded as delivered by the deadline.
    pub undelivered: usize,
    /// Keys with committed events, and those whose first successful
    /// receipts equal their events in commit order.
    pub keys_seen: usize,
    pub keys_in_commit_order: usize,
    /// First successful receipts that arrived before an event committed
    /// earlier on their key had been received (must be 0).
    pub order_violations: usize,
    /// Committed events never received successfully (must be 0).
    pub gaps: usize,
    /// Requests for events that were not committed (rolled back; must be 0).
    pub rolled_back_received: usize,
}

#[derive(Debug, Serialize)]
pub struct ScaleFigures {
    /// Successful deliveries in the tables before the drain.
    pub finished_rows: usize,
    /// Dead letters in the tables.
    pub dead_rows: usize,
    /// Due deliveries of one endpoint that never answers.
    pub backlog_rows: usize,
    /// Retries due a day later.
    pub future_rows: usize,
    /// The drain part on the empty database, its runs alternating with
    /// these: what the ratio is taken against.
    pub baseline: DrainRuns,
    pub drain: DrainRuns,
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
    /// Ten endpoints (`--endpoints`).
    pub drain: Option<DrainRuns>,
    /// One endpoint.
    pub drain_one: Option<DrainRuns>,
    /// One endpoint, the backlog spread over 1,000 ordering keys: compare
    /// with `drain_one`.
    pub drain_keyed: Option<DrainRuns>,
    pub steady: Option<SteadyFigures>,
    pub producer: Option<ProducerFigures>,
    pub scale: Option<ScaleFigures>,
    pub isolation: Option<DrainRuns>,
    /// Fan-out with a filter on each of 100 webhooks vs without.
    pub fanout: Option<FanoutFigures>,
    /// One endpoint, `maxEvents = 100`: compare with `drain_one`.
    pub drain_batched: Option<DrainRuns>,
    pub templates: Option<TemplateFigures>,
    /// One webhook with a rate limit, several dispatchers.
    pub rate_limit: Option<RateLimitFigures>,
    /// One webhook's dead letters recovered.
    pub recover: Option<RecoverFigures>,
    /// Ordered delivery under stress.
    pub ordering: Option<OrderingFigures>,
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
            drain_one: None,
            drain_keyed: None,
            steady: None,
            producer: None,
            scale: None,
            isolation: None,
            fanout: None,
            drain_batched: None,
            templates: None,
            rate_limit: None,
            recover: None,
            ordering: None,
            dispatcher: DispatcherFigures::default(),
            signatures_verified: 0,
            signatures_bad: 0,
            checks: Vec::new(),
        }
    }

    /// Compares the figures with their targets (the table of docs/PERFORMANCE.md).
    pub fn finish(&mut self) {
        let drain = self.drain.as_ref().map(|d| d.median_per_second);
        let mut checks = Vec::new();
        if let Some(d) = drain {
            checks.push(check(
                "drain",
                ">= 10,000 deliveries/s",
                format!("{d:.0}/s"),
                d >= 10_000.0,
            ));
        }
        if let Some(one) = &self.drain_one {
            checks.push(check(
                "drain, 1 endpt",
                ">= 8,000 deliveries/s",
                format!("{:.0}/s", one.median_per_second),
                one.median_per_second >= 8_000.0,
            ));
            if let Some(ms) = one.median_pg_cpu_ms_per_delivery {
                checks.push(check(
                    "pg CPU, 1 endpt",
                    "<= 0.25 ms per delivery",
                    format!("{ms:.3} ms"),
                    ms <= 0.25,
                ));
            }
        }
        if let (Some(k), Some(one)) = (&self.drain_keyed, &self.drain_one) {
            let r = k.median_per_second / one.median_per_second;
            checks.push(check(
                "keyed drain",
                ">= 0.70 of unkeyed (1 endpt)",
                format!("{r:.2}"),
                r >= 0.7,
            ));
        }
        if let Some(o) = &self.ordering {
            checks.push(check(
                "ordering stress",
                "0 violations, 0 gaps",
                format!(
                    "{} violations, {} gaps{}",
                    o.order_violations,
                    o.gaps,
                    if o.rolled_back_received > 0 {
                        format!(", {} rolled back sent", o.rolled_back_received)
                    } else {
                        String::new()
                    }
                ),
                o.order_violations == 0
                    && o.gaps == 0
                    && o.rolled_back_received == 0
                    && o.keys_in_commit_order == o.keys_seen,
            ));
        }
        for (name, runs) in [
            ("spread, 1 endpt", &self.drain_one),
            ("spread, keyed", &self.drain_keyed),
            ("spread", &self.drain),
            ("spread, iso", &self.isolation),
        ] {
            if let Some(r) = runs {
                checks.push(check(
                    name,
                    "slowest run <= 1.3x the fastest",
                    format!("{:.2}x", r.slowest_over_fastest),
                    r.slowest_over_fastest <= 1.3,
                ));
            }
        }
        if let Some(s) = &self.steady {
            checks.push(check(
                "steady latency",
                "p50 <= 1 ms, p99 <= 5 ms",
                format!("p50 {:.2} ms, p99 {:.2} ms", s.p50_ms, s.p99_ms),
                s.p50_ms <= 1.0 && s.p99_ms <= 5.0 && s.missing == 0,
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
        if let Some(s) = &self.scale {
            let r = s.drain.median_per_second / s.baseline.median_per_second;
            checks.push(check(
                "scale",
                ">= 90 % of its base runs",
                format!("{:.0} %", r * 100.0),
                r >= 0.9,
            ));
        }
        if let (Some(i), Some(d)) = (&self.isolation, drain) {
            let r = i.median_per_second / d;
            checks.push(check(
                "isolation",
                ">= 90 % of drain",
                format!("{:.0} %", r * 100.0),
                r >= 0.9,
            ));
        }
        if let Some(f) = &self.fanout {
            checks.push(check(
                "filtered fan-out",
                "<= 2x unfiltered per event",
                format!("{:.2}x", f.ratio),
                f.ratio <= 2.0,
            ));
        }
        if let (Some(b), Some(one)) = (&self.drain_batched, &self.drain_one) {
            let r = b.median_per_second / one.median_per_second;
            checks.push(check(
                "batched drain",
                ">= 3x unbatched (1 endpt)",
                format!("{r:.1}x"),
                r >= 3.0,
            ));
        }
        if let (Some(t), true) = (&self.templates, self.dispatcher.deliveries > 0) {
            // The dispatcher's CPU per delivery, in microseconds.
            let per_delivery = self.dispatcher.cpu_seconds_per_10k * 100.0;
            let share = t.worst_extra_us() / per_delivery;
            checks.push(check(
                "template CPU",
                "<= 20 % of CPU per delivery",
                format!("{:.0} %", share * 100.0),
                share <= 0.2,
            ));
        }
        if let Some(r) = &self.rate_limit {
            let ratio = r.per_second / f64::from(r.limit);
            checks.push(check(
                "rate limit",
                "within 10 % of the limit",
                format!("{:.1}/s of {}/s", r.per_second, r.limit),
                (0.9..=1.1).contains(&ratio),
            ));
        }
        if let Some(r) = &self.recover {
            checks.push(check(
                "recover",
                "no statement over 1 s",
                format!("{:.0} ms", r.longest_statement_ms),
                r.longest_statement_ms <= 1000.0 && r.recovered == r.dead_letters,
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
            out += &d.line(&format!("drain ({})", d.endpoints), bound);
        }
        if let Some(d) = &self.drain_one {
            out += &d.line("drain (1)", bound);
        }
        if let Some(k) = &self.drain_keyed {
            out += &k.line("keyed (1)", None);
            if let Some(one) = &self.drain_one {
                out += &format!(
                    "              the keyed backlog drains at {:.2} of the unkeyed drain (1) (target >= 0.70)\n",
                    k.median_per_second / one.median_per_second
                );
            }
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
        let of_drain = |v: f64| {
            self.drain
                .as_ref()
                .map(|d| format!(" ({:.0} % of drain)", v / d.median_per_second * 100.0))
                .unwrap_or_default()
        };
        if let Some(s) = &self.scale {
            out += &s.baseline.line("scale base", None);
            out += &s.drain.line("scale", None);
            out += &format!(
                "              with {} successes + {} dead letters + {} future retries + a due backlog of {} for a dead endpoint ({:.0} % of the base runs alternating with it)\n",
                s.finished_rows,
                s.dead_rows,
                s.future_rows,
                s.backlog_rows,
                s.drain.median_per_second / s.baseline.median_per_second * 100.0
            );
        }
        if let Some(i) = &self.isolation {
            out += &i.line("isolation", None);
            out += &format!(
                "              healthy endpoints while one never answers ({} requests to it){}\n",
                i.runs.iter().map(|r| r.dead_endpoint_requests).sum::<u64>(),
                of_drain(i.median_per_second)
            );
        }
        if let Some(f) = &self.fanout {
            out += &format!(
                "fan-out       {} webhooks of one owner, {} events x {} runs: {:.1} us/event unfiltered, {:.1} us/event with a filter on each ({:.2}x)\n",
                f.webhooks, f.events, f.runs, f.unfiltered_us_per_event, f.filtered_us_per_event, f.ratio
            );
        }
        if let Some(b) = &self.drain_batched {
            out += &b.line("batched (1)", None);
            if let Some(one) = &self.drain_one {
                out += &format!(
                    "              maxEvents = 100: {:.1}x the unbatched drain (1)\n",
                    b.median_per_second / one.median_per_second
                );
            }
        }
        if let Some(t) = &self.templates {
            out += &format!(
                "templates     us per body: standard {:.2}, slack {:.2}, discord {:.2}, teams {:.2}, custom Jinja {:.2} ({} renders each)\n",
                t.standard_us, t.slack_us, t.discord_us, t.teams_us, t.custom_us, t.renders
            );
        }
        if let Some(r) = &self.recover {
            out += &format!(
                "recover       {} of {} dead letters in {} statements, {:.1} s; longest {:.0} ms\n",
                r.recovered, r.dead_letters, r.batches, r.total_seconds, r.longest_statement_ms
            );
        }
        if let Some(r) = &self.rate_limit {
            out += &format!(
                "rate limit    {:.1} requests/s to a webhook limited to {}/s, {} dispatchers\n",
                r.per_second, r.limit, r.dispatchers
            );
        }
        if let Some(o) = &self.ordering {
            out += &format!(
                "ordering      {} events ({} rolled back) over {} keys from {} producers, {} dispatchers: {:.1} s ({:.1} s producing), {:.0} deliveries/s\n",
                o.events, o.rolled_back, o.keys, o.producers, o.dispatchers, o.seconds, o.produce_seconds, o.per_second
            );
            out += &format!(
                "              {} requests, {} failed ({} hung past the timeout); {} undelivered; keys in commit order {}/{}; order violations {}, gaps {}, rolled back sent {}\n",
                o.requests, o.requests_failed, o.requests_hung, o.undelivered, o.keys_in_commit_order, o.keys_seen, o.order_violations, o.gaps, o.rolled_back_received
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
