//! Load generators: producer connections (as fast as they can, or at a fixed
//! rate), the plain HTTP client loop (the receiver's ceiling) and the queue
//! statements alone (the queue's ceiling).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use postbox::dispatch::{fan_out_then_claim, Busy, ClaimPlan};
use postbox::store::bench::PLAIN_INSERT_SQL;
use postbox::store::EVENT_PUBLISH_SQL as PUBLISH_SQL;
use postbox::store::{Completion, DeliveryStatus, Store};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Publish,
    PlainInsert,
}

/// K producers, one event per transaction, as fast as they can for `secs`.
/// Returns committed transactions per second.
pub async fn producers_flat_out(
    store: &Store,
    k: usize,
    secs: Duration,
    target: Target,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..k {
        let mut client = store.bench_producer().await?;
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let sql = if target == Target::Publish {
                PUBLISH_SQL
            } else {
                PLAIN_INSERT_SQL
            };
            let stmt = client.prepare(sql).await?;
            let owner = format!("producer{p}");
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let payload = serde_json::json!({"id": n, "name": "bench project"});
                let tx = client.transaction().await?;
                match target {
                    Target::Publish => {
                        tx.query_one(
                            &stmt,
                            &[
                                &"project.updated",
                                &payload,
                                &owner,
                                &None::<String>,
                                &None::<String>,
                                &false,
                            ],
                        )
                        .await?;
                    }
                    Target::PlainInsert => {
                        tx.execute(&stmt, &[&"project.updated", &owner, &payload])
                            .await?;
                    }
                }
                tx.commit().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / elapsed)
}

/// K producers publishing `rate` events per second in total for `secs`,
/// each event to one of `owners`. Returns event id -> commit instant.
pub async fn producers_at_rate(
    store: &Store,
    k: usize,
    rate: u32,
    secs: Duration,
    owners: &[String],
) -> anyhow::Result<HashMap<String, Instant>> {
    let commits: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let per_producer = Duration::from_secs_f64(k as f64 / f64::from(rate.max(1)));
    let deadline = Instant::now() + secs;
    let mut tasks = Vec::new();
    for p in 0..k {
        let mut client = store.bench_producer().await?;
        let commits = commits.clone();
        let owners = owners.to_vec();
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare(PUBLISH_SQL).await?;
            // Stagger producers across one period so commits spread evenly.
            tokio::time::sleep(per_producer.mul_f64(p as f64 / k as f64)).await;
            let mut tick = tokio::time::interval(per_producer);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                let owner = &owners[(p + n) % owners.len()];
                let payload = serde_json::json!({"id": n, "producer": p});
                let tx = client.transaction().await?;
                let id: Uuid = tx
                    .query_one(
                        &stmt,
                        &[
                            &"project.updated",
                            &payload,
                            owner,
                            &None::<String>,
                            &None::<String>,
                            &false,
                        ],
                    )
                    .await?
                    .get(0);
                tx.commit().await?;
                let at = Instant::now();
                commits.lock().expect("commits").insert(id.to_string(), at);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let map = std::mem::take(&mut *commits.lock().expect("commits"));
    Ok(map)
}

/// A plain HTTP client loop at `concurrency` against `url` for `count` requests.
pub async fn receiver_alone(url: &str, concurrency: usize, count: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let left = Arc::new(AtomicU64::new(count as u64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, left, url) = (client.clone(), left.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await?;
                r.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// The dispatcher's own statements (fan-out, claim, complete) on the backlog,
/// with every attempt "succeeding" at once: no HTTP. `workers` loops share it.
pub async fn queue_alone(
    store: &Store,
    workers: usize,
    batch: i64,
    expected: u64,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (store, done) = (store.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut idle_rounds = 0;
            while done.load(Ordering::Relaxed) < expected && idle_rounds < 200 {
                let now = Utc::now();
                let plan = ClaimPlan {
                    limit: batch as usize,
                    lease: Duration::from_secs(60),
                    per_webhook: batch,
                };
                // The dispatcher's claim round, as it runs it.
                let mut claimed = Vec::new();
                fan_out_then_claim(
                    &store,
                    now,
                    plan,
                    Busy::default,
                    |_| true,
                    |d| claimed.push(d),
                )
                .await?;
                if claimed.is_empty() {
                    idle_rounds += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle_rounds = 0;
                let completions: Vec<Completion> = claimed
                    .iter()
                    .map(|d| Completion {
                        delivery_id: d.id,
                        webhook_id: d.webhook_id,
                        attempt: d.attempt,
                        status: DeliveryStatus::Success,
                        next_attempt_at: None,
                        response_code: Some(200),
                        response_body: Some(String::new()),
                        error_message: None,
                        started_at: now,
                        duration_ms: 1,
                        throttle_until: None,
                        endpoint_ok: None,
                        ordering_key: d.ordering_key.clone(),
                        leave_line: false,
                    })
                    .collect();
                store
                    .delivery_complete_many(&completions, Utc::now())
                    .await?;
                done.fetch_add(claimed.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = done.load(Ordering::Relaxed);
    anyhow::ensure!(n >= expected, "queue-alone drained {n} of {expected}");
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
