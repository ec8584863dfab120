//! `postbox bench`: the load benchmark (its figures and targets are in docs/PERFORMANCE.md).
//!
//! Runs in a database of its own (created and dropped here) on the server of
//! DATABASE_URL, with its own receiver on loopback and the dispatcher as a
//! child process exactly as `serve` runs it. Prints a table, or one JSON
//! object with `--json`. Figures are never asserted: they are printed with
//! their ceilings and targets.

mod child;
mod drain;
mod load;
mod ordering;
mod pgcpu;
mod ratelimit;
mod receiver;
mod recover;
mod report;
mod scale;
mod shaping;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rand::RngExt;
use uuid::Uuid;

use super::args::BenchArgs;
use child::DispatcherProcess;
use drain::{Bench, Part, RUNS};
use postbox::signing::generate_secret;
use postbox::store::bench::{bench_database_create, bench_database_drop};
use postbox::store::Store;
use receiver::BenchReceiver;
use report::*;
use scale::ScaleDb;

/// Ordering keys of the keyed drain's backlog (issue 16's target: at least
/// 70 % of the unkeyed one-endpoint drain).
const KEYED_KEYS: i32 = 1000;

/// The dispatchers' POSTBOX_REQUEST_TIMEOUT (the ordering part's receiver
/// hangs longer than this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct Sizes {
    events: usize,
    /// Events of the one-endpoint drain.
    events_one: usize,
    endpoints: usize,
    producers: usize,
    rate: u32,
    duration: Duration,
    scale_finished: usize,
    scale_dead: usize,
    scale_backlog: usize,
    scale_future: usize,
    concurrency: usize,
}

impl Sizes {
    fn from(args: &BenchArgs) -> Sizes {
        let q = args.quick;
        Sizes {
            events: args.events.unwrap_or(if q { 20_000 } else { 100_000 }),
            events_one: if q { 10_000 } else { 20_000 },
            endpoints: args.endpoints.max(2),
            producers: args.producers.max(1),
            rate: args.rate.max(1),
            duration: args
                .duration
                .unwrap_or(Duration::from_secs(if q { 4 } else { 10 })),
            // Issue 12's database: 1 M deliveries, 400k of them dead
            // letters, and a 100k backlog of one slow endpoint (a fifth of
            // it with --quick).
            scale_finished: args
                .scale_finished
                .unwrap_or(if q { 100_000 } else { 500_000 }),
            scale_dead: args.scale_dead.unwrap_or(if q { 80_000 } else { 400_000 }),
            scale_backlog: args
                .scale_backlog
                .unwrap_or(if q { 20_000 } else { 100_000 }),
            scale_future: args.scale_future.unwrap_or(0),
            concurrency: args.concurrency.max(1),
        }
    }
}

impl Sizes {
    /// Rows the scale part puts in its database.
    fn history(&self) -> usize {
        self.scale_finished + self.scale_dead + self.scale_backlog + self.scale_future
    }
}

fn wants(args: &BenchArgs, part: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|p| p == part)
}

/// `drain` stands for every drain part (drain1, drain10, keyed, batched);
/// each name alone runs that part.
fn wants_drain(args: &BenchArgs, which: &str) -> bool {
    wants(args, "drain") || wants(args, which)
}

fn with_db(url: &str, db: &str) -> String {
    let (base, rest) = url.rsplit_once('/').unwrap_or((url, ""));
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{db}{query}")
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let sizes = Sizes::from(&args);
    let suffix: u32 = rand::rng().random();
    let name = format!("postbox_bench_{suffix:08x}");
    let admin = &args.db.database_url;
    bench_database_create(admin, &name).await?;
    // The scale part drains a filled database of its own, its runs
    // alternating with the drains of the empty one (so the machine's drift
    // hits the scale figure and its baseline alike).
    let scale_name =
        (wants(&args, "scale") && sizes.history() > 0).then(|| format!("{name}_scale"));
    let mut created = vec![name.clone()];
    let mut outcome = Ok(());
    if let Some(n) = &scale_name {
        outcome = bench_database_create(admin, n).await;
        if outcome.is_ok() {
            created.push(n.clone());
        }
    }
    // A panic inside the run still drops the databases (the scale one holds
    // a million rows), then goes on unwinding.
    let outcome = match outcome {
        Ok(()) => {
            let scale_url = scale_name.as_ref().map(|n| with_db(admin, n));
            std::panic::AssertUnwindSafe(run_in(
                &with_db(admin, &name),
                scale_url.as_deref(),
                &sizes,
                &args,
            ))
            .catch_unwind()
            .await
        }
        Err(e) => Ok(Err(e.into())),
    };
    for db in created {
        if let Err(e) = bench_database_drop(admin, &db).await {
            eprintln!("bench: could not drop {db}: {e}");
        }
    }
    let outcome = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

async fn run_in(
    url: &str,
    scale_url: Option<&str>,
    sizes: &Sizes,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let store = Store::connect(url, 16)?;
    store.migrate().await?;
    let secret = generate_secret(&mut rand::rng());
    let receiver = BenchReceiver::start(secret.clone(), ordering::FLAKINESS).await?;
    let mut report = Report::new(
        sizes.events,
        sizes.endpoints,
        sizes.producers,
        sizes.concurrency,
    );
    let say = |msg: &str| {
        if !args.json {
            eprintln!("bench: {msg}");
        }
    };

    // The fan-out with and without filters first, with no dispatcher
    // running and no other event waiting (the statement alone is timed).
    if wants(args, "fanout") {
        say("fan-out: 100 webhooks of one owner, unfiltered and filtered");
        let events = if args.quick { 200 } else { 1000 };
        report.fanout =
            Some(shaping::fanout(&store, &receiver, &secret, events, drain::RUNS).await?);
    }
    if wants(args, "templates") {
        say("templates: body build time per delivery");
        report.templates = Some(shaping::templates(if args.quick { 2_000 } else { 20_000 }));
    }

    // Ceilings first, with no dispatcher running.
    if wants(args, "ceilings") {
        say("ceiling: receiver alone");
        let n = (sizes.events / 2).max(10_000);
        report.ceilings.receiver_per_second =
            Some(load::receiver_alone(&receiver.ok_url(0), sizes.concurrency, n).await?);
        // Those requests were unsigned: start the signature sample afresh.
        receiver.counters.reset();
        say("ceiling: queue alone");
        let hooks =
            add_endpoints(&store, &receiver, "queue", sizes.endpoints, &secret, false).await?;
        store
            .bench_events_insert_many("queue", hooks.len() as i32, sizes.events as i32, 0)
            .await?;
        report.ceilings.queue_per_second =
            Some(load::queue_alone(&store, 2, 500, sizes.events as u64).await?);
    }
    if wants(args, "producer") || wants(args, "ceilings") {
        say("producer cost: plain insert, publish (dispatcher busy), publish (dispatcher idle: NOTIFY per commit)");
        store.bench_plain_create().await?;
        store.queue_state_set_waiting(false).await?;
        // Alternate the two, twice, and keep each one's best run: the
        // machine's noise (checkpoints, other processes) then hits both alike.
        let (mut plain, mut busy) = (0f64, 0f64);
        for _ in 0..2 {
            let (k, t) = (sizes.producers, sizes.duration);
            plain =
                plain.max(load::producers_flat_out(&store, k, t, load::Target::PlainInsert).await?);
            busy = busy.max(load::producers_flat_out(&store, k, t, load::Target::Publish).await?);
        }
        store.queue_state_set_waiting(true).await?;
        let idle = load::producers_flat_out(
            &store,
            sizes.producers,
            sizes.duration,
            load::Target::Publish,
        )
        .await?;
        report.ceilings.plain_insert_per_second = Some(plain);
        report.producer = Some(ProducerFigures {
            plain_insert_per_second: plain,
            publish_per_second: busy,
            publish_notifying_per_second: idle,
            ratio: busy / plain,
        });
        // Those events have no webhooks: let the dispatcher fan them out
        // (to nothing) before the timed parts start.
    }

    let env = [
        ("POSTBOX_CONCURRENCY", sizes.concurrency.to_string()),
        (
            "POSTBOX_REQUEST_TIMEOUT",
            format!("{}s", REQUEST_TIMEOUT.as_secs()),
        ),
        ("POSTBOX_SHUTDOWN_TIMEOUT", "2s".to_string()),
    ];
    let mut dispatcher = DispatcherProcess::start(url, &env)?;
    wait_for_idle(&store, Duration::from_secs(120)).await?;
    let cpu_start = dispatcher.usage().cpu_seconds;
    let mut delivered_total = 0u64;

    let bench = Bench {
        store: &store,
        receiver: &receiver,
        secret: &secret,
        backlog_of: None,
    };
    // The drains and the isolation part, each run three times with fresh
    // webhooks and events, alternating between the parts so that the
    // machine's noise hits each alike.
    let ten = Part {
        prefix: "drain",
        endpoints: sizes.endpoints,
        events: sizes.events,
        hang: false,
        count_writes: false,
        batch: None,
        keys: 0,
    };
    let one = Part {
        prefix: "one",
        endpoints: 1,
        events: sizes.events_one,
        hang: false,
        count_writes: true,
        batch: None,
        keys: 0,
    };
    // drain1's backlog spread over KEYED_KEYS ordering keys: the cost of
    // ordered delivery (one delivery in flight per key, promotions).
    let keyed = Part {
        prefix: "keyed",
        keys: KEYED_KEYS,
        ..one
    };
    let batched = Part {
        prefix: "batch",
        endpoints: 1,
        events: sizes.events_one,
        hang: false,
        count_writes: false,
        batch: Some(100),
        keys: 0,
    };
    let iso = Part {
        prefix: "iso",
        endpoints: sizes.endpoints,
        events: sizes.events,
        hang: true,
        count_writes: false,
        batch: None,
        keys: 0,
    };
    let parts: Vec<(Part, &Bench)> = [
        (wants_drain(args, "drain10"), ten, &bench),
        (wants_drain(args, "drain1"), one, &bench),
        (wants_drain(args, "keyed"), keyed, &bench),
        (wants(args, "isolation"), iso, &bench),
        (wants_drain(args, "batched"), batched, &bench),
    ]
    .into_iter()
    .filter_map(|(wanted, p, b)| wanted.then_some((p, b)))
    .collect();
    let mut runs: Vec<Vec<DrainFigures>> = parts.iter().map(|_| Vec::new()).collect();
    for run in 0..RUNS {
        for ((part, on), figures) in parts.iter().zip(&mut runs) {
            say(&format!(
                "{} run {}/{RUNS}: {} events for {} endpoints{}{}",
                part.prefix,
                run + 1,
                part.events,
                part.endpoints,
                if part.hang {
                    ", one of which never answers and gets half of them"
                } else {
                    ""
                },
                if part.keys > 0 {
                    format!(", over {} ordering keys", part.keys)
                } else {
                    String::new()
                }
            ));
            let d = on.drain(part, run).await?;
            delivered_total += d.deliveries;
            figures.push(d);
        }
    }
    for ((part, _), figures) in parts.iter().zip(runs) {
        let runs = DrainRuns::new(part.endpoints, figures);
        let r = Some(runs);
        if part.hang {
            report.isolation = r;
        } else if part.batch.is_some() {
            report.drain_batched = r;
        } else if part.keys > 0 {
            report.drain_keyed = r;
        } else if part.endpoints == 1 {
            report.drain_one = r;
        } else {
            report.drain = r;
        }
    }
    // The scale part (issue 12): its own database and dispatcher, its runs
    // alternating with runs of the drain on the empty database, its
    // baseline; its dispatcher runs only meanwhile.
    let (mut scale_cpu, mut scale_rss_kib) = (0.0, 0);
    // Whether drains ran on the benchmark's database: then it holds their
    // dead rows, which autovacuum would have cleared. (Not on an empty
    // database: ANALYZE of empty tables makes the fan-out's generic plan 30
    // times slower once rows arrive; docs/PERFORMANCE.md.)
    let drained = !parts.is_empty();
    if let Some(u) = scale_url {
        // Both databases start vacuumed: the scale one after its fill, this
        // one after the drains before (as autovacuum would).
        if drained {
            store.bench_vacuum().await?;
        }
        let mut s =
            ScaleDb::fill(u, sizes, &receiver, &secret, &env, REQUEST_TIMEOUT, &say).await?;
        let on_scale = Bench {
            store: &s.store,
            backlog_of: Some(s.slow),
            ..bench
        };
        let base = Part {
            prefix: "base",
            ..ten
        };
        let scaled = Part {
            prefix: "scale",
            ..ten
        };
        let (mut baseline, mut figures) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            for (part, on, into) in [
                (&base, &bench, &mut baseline),
                (&scaled, &on_scale, &mut figures),
            ] {
                say(&format!(
                    "{} run {}/{RUNS}: {} events for {} endpoints",
                    part.prefix,
                    run + 1,
                    part.events,
                    part.endpoints
                ));
                let d = on.drain(part, run).await?;
                delivered_total += d.deliveries;
                into.push(d);
            }
        }
        report.scale = Some(ScaleFigures {
            finished_rows: sizes.scale_finished,
            dead_rows: sizes.scale_dead,
            backlog_rows: sizes.scale_backlog,
            future_rows: sizes.scale_future,
            baseline: DrainRuns::new(ten.endpoints, baseline),
            drain: DrainRuns::new(ten.endpoints, figures),
        });
        scale_cpu = s.dispatcher.usage().cpu_seconds - s.cpu_start;
        scale_rss_kib = s.dispatcher.stop()?.peak_rss_kib;
    }
    if wants(args, "steady") {
        // The drains left hundreds of thousands of dead rows behind; with
        // autovacuum on (any production server) they would be gone.
        if drained {
            store.bench_vacuum().await?;
        }
        say(&format!(
            "steady: {} events/s from {} producers for {:?}",
            sizes.rate, sizes.producers, sizes.duration
        ));
        let s = steady(&store, &receiver, sizes, &secret).await?;
        delivered_total += s.events as u64;
        report.steady = Some(s);
    }
    if wants(args, "recover") {
        let n = if args.quick {
            recover::DEAD_LETTERS / 10
        } else {
            recover::DEAD_LETTERS
        };
        say(&format!(
            "recover: {n} dead letters of one webhook, one job"
        ));
        report.recover = Some(recover::run(&store, &receiver, &secret, n).await?);
    }
    if wants(args, "ratelimit") {
        say(&format!(
            "ratelimit: one webhook limited to {}/s, {} dispatchers, a backlog of {} events",
            ratelimit::LIMIT,
            ratelimit::DISPATCHERS,
            ratelimit::LIMIT * 20
        ));
        wait_for_idle(&store, Duration::from_secs(120)).await?;
        let r = ratelimit::run(&store, &receiver, &secret, || {
            DispatcherProcess::start(url, &env)
        })
        .await?;
        report.rate_limit = Some(r);
    }
    // The ordering part's deliveries are shared between three dispatchers
    // and mostly retries: its CPU is left out of the per-delivery figure.
    let mut cpu_elsewhere = 0.0;
    if wants(args, "ordering") {
        let size = ordering::Size::new(args.quick);
        say(&format!(
            "ordering: {} producers, {} keys, {} events, {} dispatchers, a receiver failing {:.0} % of requests ({:.0} % by hanging {:?})",
            ordering::PRODUCERS,
            size.keys,
            size.events,
            ordering::DISPATCHERS,
            f64::from(ordering::FLAKINESS.hang_per_mille + ordering::FLAKINESS.fail_per_mille) / 10.0,
            f64::from(ordering::FLAKINESS.hang_per_mille) / 10.0,
            ordering::FLAKINESS.hang,
        ));
        wait_for_idle(&store, Duration::from_secs(120)).await?;
        let before = dispatcher.usage().cpu_seconds;
        let r = ordering::run(&store, &receiver, &secret, size, || {
            DispatcherProcess::start(url, &env)
        })
        .await?;
        cpu_elsewhere = dispatcher.usage().cpu_seconds - before;
        report.ordering = Some(r);
    }
    let usage = dispatcher.usage();
    let cpu = usage.cpu_seconds - cpu_start - cpu_elsewhere + scale_cpu;
    let mut usage = dispatcher.stop()?;
    usage.peak_rss_kib = usage.peak_rss_kib.max(scale_rss_kib);
    report.dispatcher = DispatcherFigures {
        peak_rss_mib: usage.peak_rss_kib as f64 / 1024.0,
        cpu_seconds_per_10k: if delivered_total > 0 {
            cpu / delivered_total as f64 * 10_000.0
        } else {
            0.0
        },
        deliveries: delivered_total,
    };
    report.signatures_verified = receiver.counters.verified.load(Ordering::Relaxed);
    report.signatures_bad = receiver.counters.bad_signatures.load(Ordering::Relaxed);
    report.finish();
    Ok(report)
}

async fn add_endpoints(
    store: &Store,
    receiver: &BenchReceiver,
    prefix: &str,
    n: usize,
    secret: &str,
    first_hangs: bool,
) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let url = if first_hangs && i == 0 {
            receiver.hang_url(i)
        } else {
            receiver.ok_url(i)
        };
        ids.push(
            store
                .bench_webhook_insert(&format!("{prefix}{i}"), &url, secret, 3600)
                .await?,
        );
    }
    Ok(ids)
}

/// Waits until no event waits for fan-out and nothing is due.
async fn wait_for_idle(store: &Store, limit: Duration) -> anyhow::Result<()> {
    wait_for_idle_except(store, limit, None).await
}

/// As `wait_for_idle`, leaving out the deliveries of webhook `except`.
async fn wait_for_idle_except(
    store: &Store,
    limit: Duration,
    except: Option<Uuid>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let next = match except {
            None => store.delivery_next_due().await?,
            Some(id) => store.bench_next_due_except(id).await?,
        };
        match next {
            Some(due) if due <= chrono::Utc::now() => {}
            _ => return Ok(()),
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the dispatcher did not catch up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn steady(
    store: &Store,
    receiver: &BenchReceiver,
    sizes: &Sizes,
    secret: &str,
) -> anyhow::Result<SteadyFigures> {
    add_endpoints(store, receiver, "steady", sizes.endpoints, secret, false).await?;
    let owners: Vec<String> = (0..sizes.endpoints).map(|i| format!("steady{i}")).collect();
    receiver.counters.arrivals.lock().expect("arrivals").clear();
    receiver.counters.record.store(true, Ordering::Relaxed);
    let commits =
        load::producers_at_rate(store, sizes.producers, sizes.rate, sizes.duration, &owners)
            .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = {
            let arrivals = receiver.counters.arrivals.lock().expect("arrivals");
            commits
                .keys()
                .filter(|id| arrivals.contains_key(*id))
                .count()
        };
        if got == commits.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.counters.record.store(false, Ordering::Relaxed);
    let arrivals = std::mem::take(&mut *receiver.counters.arrivals.lock().expect("arrivals"));
    let mut lat: Vec<f64> = commits
        .iter()
        .filter_map(|(id, c)| {
            arrivals
                .get(id)
                .map(|a| a.saturating_duration_since(*c).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1]
    };
    Ok(SteadyFigures {
        rate: sizes.rate,
        seconds: sizes.duration.as_secs_f64(),
        events: commits.len(),
        missing: commits.len() - lat.len(),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
    })
}
