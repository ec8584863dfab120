//! The dispatcher: claim -> send -> complete.
//!
//! - The producer loop (`run`) fans committed events out into deliveries,
//!   claims due deliveries (committed as `sending` under a lease before any
//!   request starts) up to the free concurrency slots, and spawns one task per
//!   claim. It wakes on NOTIFY (see `listener`), on a freed slot, or on a poll
//!   timer that also covers the next due retry.
//! - Each task makes one signed attempt (`sender`) and turns it into a
//!   `Completion` (`retry`), handed to the completer.
//! - The completer writes outcomes in batches, guarded by the fencing token.
//!
//! No transaction and no pool connection is held across an HTTP request.

mod completer;
mod idle;
pub mod listener;
mod rate;
pub mod retry;
pub mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::store::{ClaimLimits, ClaimedDelivery, Completion, DeliveryStatus, Store, StoreError};
use completer::run_completer;
use idle::{IdleState, Pass, RECHECK_FIRST, RESCUE_EVERY, STALLED_AFTER};
use rate::RateLimiter;
use retry::Attempt;
use sender::{Sender, SenderConfig};

/// Dispatcher settings; `config::DispatchArgs` fills them from flags and env.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Deliveries in flight at once in this dispatcher.
    pub concurrency: usize,
    /// Deliveries in flight at once to one webhook (endpoint isolation).
    pub endpoint_concurrency: usize,
    /// Deliveries started per second by this dispatcher; 0 = unlimited.
    pub rate_limit: u32,
    pub request_timeout: Duration,
    pub allow_private_targets: bool,
    pub require_https: bool,
    pub shutdown_timeout: Duration,
    /// Longest sleep without a wake-up (missed notifications, due retries).
    pub poll_interval: Duration,
    /// Events fanned out per statement, and the most rows one claim takes.
    pub batch_size: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: 128,
            endpoint_concurrency: 32,
            rate_limit: 0,
            request_timeout: Duration::from_secs(15),
            allow_private_targets: false,
            require_https: false,
            shutdown_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            batch_size: 500,
        }
    }
}

impl DispatchConfig {
    /// How long a claim stays valid: two request timeouts plus a margin for
    /// queueing and the completion write. A dispatcher that dies loses its
    /// claims to the rescue after this long.
    pub fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(30)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `run_once` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnceReport {
    pub events_fanned_out: i64,
    pub deliveries_created: i64,
    pub attempts: usize,
    pub rescued: u64,
}

#[derive(Default)]
struct InFlight {
    /// delivery id -> (webhook id, attempt)
    deliveries: HashMap<Uuid, (Uuid, i32)>,
    per_webhook: HashMap<Uuid, usize>,
}

struct Shared {
    store: Store,
    sender: Sender,
    clock: SharedClock,
    config: DispatchConfig,
    inflight: Mutex<InFlight>,
    slot_freed: Notify,
    /// A webhook that was at its in-flight cap is below it again.
    cap_freed: AtomicBool,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        config: DispatchConfig,
        clock: SharedClock,
    ) -> Result<Dispatcher, DispatchError> {
        let sender = Sender::new(
            SenderConfig {
                request_timeout: config.request_timeout,
                allow_private_targets: config.allow_private_targets,
                require_https: config.require_https,
            },
            clock.clone(),
        )?;
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                store,
                sender,
                clock,
                config,
                inflight: Mutex::new(InFlight::default()),
                slot_freed: Notify::new(),
                cap_freed: AtomicBool::new(false),
            }),
        })
    }

    /// One synchronous pass for tests and tools: rescue, fan out, claim one
    /// batch, send it, record the outcomes.
    pub async fn run_once(&self) -> Result<OnceReport, DispatchError> {
        let s = &self.shared;
        let now = s.clock.now();
        let rescued = s.store.delivery_rescue_expired(now, 1000).await?;
        let limit = s.config.concurrency.min(s.config.batch_size) as i64;
        let claim = ClaimLimits {
            limit,
            busy_webhooks: &[],
            busy_room: &[],
            lease: s.config.lease(),
            per_webhook: s.config.endpoint_concurrency as i64,
        };
        let fan = s.store.event_fanout_many(limit, now, claim).await?;
        let mut claimed = fan.claimed;
        let room = limit - claimed.len() as i64;
        if room > 0 {
            let more = s
                .store
                .delivery_claim(
                    now,
                    ClaimLimits {
                        limit: room,
                        ..claim
                    },
                )
                .await?;
            claimed.extend(more);
        }
        let attempts = claimed.len();
        let completions =
            futures_util::future::join_all(claimed.iter().map(|d| s.attempt(d))).await;
        s.store
            .delivery_complete_many(&completions, s.clock.now())
            .await?;
        Ok(OnceReport {
            events_fanned_out: fan.events,
            deliveries_created: fan.deliveries,
            attempts,
            rescued,
        })
    }

    /// Runs until `shutdown` fires, then stops claiming, lets in-flight
    /// requests finish within `shutdown_timeout`, records every outcome, and
    /// gives back what it could not finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DispatchError> {
        let s = self.shared.clone();
        let wake = Arc::new(Notify::new());
        let wake_claim = Arc::new(AtomicBool::new(false));
        let listener_stop = CancellationToken::new();
        let listener = tokio::spawn(listener::run(
            s.store.url().to_string(),
            wake.clone(),
            wake_claim.clone(),
            listener_stop.clone(),
        ));
        let (tx, rx) = mpsc::channel::<Completion>(s.config.concurrency.max(1) * 2);
        let completer = tokio::spawn(run_completer(s.store.clone(), rx, s.clock.clone()));
        let permits = Arc::new(Semaphore::new(s.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut limiter = RateLimiter::new(s.config.rate_limit);
        let mut idle = IdleState::default();
        // Look for due deliveries (not only new events) in the next pass.
        let mut claim_wanted = true;
        let mut last_claim = Instant::now();
        let mut last_rescue: Option<Instant> = None;
        let mut error_backoff = Duration::from_millis(100);
        tracing::info!(
            concurrency = s.config.concurrency,
            endpoint_concurrency = s.config.endpoint_concurrency,
            rate_limit = s.config.rate_limit,
            lease_secs = s.config.lease().as_secs(),
            "dispatcher started"
        );

        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let pass = async {
                if last_rescue.is_none_or(|t| t.elapsed() >= RESCUE_EVERY) {
                    last_rescue = Some(Instant::now());
                    let n = s.store.delivery_rescue_expired(s.clock.now(), 1000).await?;
                    if n > 0 {
                        tracing::warn!(rescued = n, "requeued deliveries whose lease expired");
                        claim_wanted = true;
                    }
                }
                let free = permits.available_permits();
                if free == 0 {
                    return Ok::<_, StoreError>(Pass::Full);
                }
                let mut limit = free.min(s.config.batch_size.max(1));
                if let Some(allowed) = limiter.available() {
                    limit = limit.min(allowed);
                }
                if limit == 0 {
                    return Ok(Pass::RateLimited);
                }
                let (busy, room_left) = s.busy_webhooks();
                let claim = ClaimLimits {
                    limit: limit as i64,
                    busy_webhooks: &busy,
                    busy_room: &room_left,
                    lease: s.config.lease(),
                    per_webhook: s.config.endpoint_concurrency as i64,
                };
                // 1. New events: fan out and claim in one statement.
                let safe_before = idle.safe;
                let fan = s
                    .store
                    .event_fanout_many(limit as i64, s.clock.now(), claim)
                    .await?;
                idle.saw_barrier(fan.barrier_clear);
                let mut claimed = fan.claimed.len();
                for d in fan.claimed {
                    spawn_attempt(&s, &permits, &mut tasks, &tx, d);
                }
                let now = s.clock.now();
                if fan.queued > 0
                    || wake_claim.swap(false, Ordering::Relaxed)
                    || s.cap_freed.swap(false, Ordering::Relaxed)
                    || last_claim.elapsed() >= s.config.poll_interval
                {
                    idle.due_unclaimable = false;
                    claim_wanted = true;
                }
                if fan.next_due.is_some_and(|due| due <= now) && !idle.due_unclaimable {
                    claim_wanted = true;
                }
                // 2. Due deliveries: retries, requeued, rescued, queued by fan-out.
                let room = limit - claimed;
                if claim_wanted && room > 0 {
                    claim_wanted = false;
                    last_claim = Instant::now();
                    // The fan-out's claims count against their webhooks' caps.
                    let (busy, room_left) = s.busy_webhooks();
                    let rows = s
                        .store
                        .delivery_claim(
                            now,
                            ClaimLimits {
                                limit: room as i64,
                                busy_webhooks: &busy,
                                busy_room: &room_left,
                                ..claim
                            },
                        )
                        .await?;
                    // Due but nothing claimable (webhooks at their cap, rows
                    // locked by another dispatcher): wait for a change.
                    idle.due_unclaimable = rows.is_empty();
                    if rows.len() == room {
                        claim_wanted = true;
                    }
                    claimed += rows.len();
                    for d in rows {
                        spawn_attempt(&s, &permits, &mut tasks, &tx, d);
                    }
                }
                limiter.take(claimed);
                metrics::histogram!("postbox_claim_batch_size").record(claimed as f64);
                // Partial events continue at once, whatever the wake-up state.
                Ok(
                    if fan.events as usize == limit || fan.partial > 0 || claim_wanted {
                        Pass::Backlog
                    } else if safe_before && idle.flag == Some(true) {
                        // Less than a batch, so this pass took every event
                        // committed before it; any later producer saw the flag
                        // and notified. No second look needed: wait.
                        Pass::Idle {
                            safe_before,
                            next_due: fan.next_due,
                        }
                    } else if fan.events > 0 || claimed > 0 {
                        Pass::Some
                    } else {
                        Pass::Idle {
                            safe_before,
                            next_due: fan.next_due,
                        }
                    },
                )
            };
            let pass = match pass.await {
                Ok(p) => {
                    error_backoff = Duration::from_millis(100);
                    p
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = error_backoff.as_millis() as u64, "dispatcher pass failed");
                    idle = IdleState::default();
                    claim_wanted = true;
                    tokio::select! {
                        _ = tokio::time::sleep(error_backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    error_backoff = (error_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            metrics::gauge!("postbox_dispatcher_in_flight")
                .set((s.config.concurrency - permits.available_permits()) as f64);
            match pass {
                Pass::Full => {
                    let stalled = tokio::select! {
                        _ = s.slot_freed.notified() => false,
                        _ = tokio::time::sleep(STALLED_AFTER) => true,
                        _ = shutdown.cancelled() => false,
                    };
                    if stalled && idle.flag != Some(true) {
                        // Every slot is held by slow requests: this dispatcher
                        // fans out nothing meanwhile, so let producers wake
                        // the others.
                        if s.store.queue_state_set_waiting(true).await.is_ok() {
                            idle.set_flag(true);
                        }
                    }
                }
                Pass::RateLimited => {
                    tokio::select! {
                        _ = tokio::time::sleep(limiter.until_next()) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Pass::Backlog => {
                    // Busy: producers need not pay for a NOTIFY.
                    if idle.flag != Some(false) {
                        match s.store.queue_state_set_waiting(false).await {
                            Ok(()) => idle.set_flag(false),
                            Err(e) => tracing::warn!(error = %e, "cannot clear the wake-up flag"),
                        }
                    }
                }
                // Less than a batch: the next pass looks once more.
                Pass::Some => {}
                Pass::Idle { .. } if idle.flag != Some(true) => {
                    // Say we wait; the next statement checks that no producer
                    // missed it, the one after looks for work once more.
                    match s.store.queue_state_set_waiting(true).await {
                        Ok(()) => idle.set_flag(true),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot set the wake-up flag");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                Pass::Idle {
                    safe_before,
                    next_due,
                } => {
                    let sleep = if safe_before {
                        idle.recheck_delay = RECHECK_FIRST;
                        let until_due = next_due
                            .filter(|_| !idle.due_unclaimable)
                            .map(|due| until(due, s.clock.now()).max(Duration::from_millis(1)))
                            .unwrap_or(s.config.poll_interval);
                        until_due.min(s.config.poll_interval)
                    } else if !idle.rechecked {
                        // The barrier cleared during the last pass: look once more.
                        idle.rechecked = true;
                        continue;
                    } else {
                        // A producer transaction is still open: look again
                        // soon, then less and less often.
                        let d = idle.recheck_delay.max(RECHECK_FIRST);
                        idle.recheck_delay = (d * 2).min(s.config.poll_interval);
                        d
                    };
                    idle.rechecked = false;
                    let polled = tokio::select! {
                        _ = wake.notified() => false,
                        _ = s.slot_freed.notified() => false,
                        _ = tokio::time::sleep(sleep) => safe_before,
                        _ = shutdown.cancelled() => false,
                    };
                    if polled && sleep >= s.config.poll_interval {
                        // A full poll without a wake-up: another dispatcher may
                        // have cleared the flag. Say again that we wait.
                        idle.reset();
                    }
                }
            }
        }

        tracing::info!(
            in_flight = tasks.len(),
            "dispatcher stopping: no more claims"
        );
        let deadline = s.config.shutdown_timeout;
        let drained = tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let abandoned: Vec<(Uuid, i32)> = {
                let inflight = s.inflight.lock().expect("in-flight lock");
                inflight
                    .deliveries
                    .iter()
                    .map(|(id, (_, a))| (*id, *a))
                    .collect()
            };
            let now = s.clock.now();
            let completions: Vec<Completion> = abandoned
                .iter()
                .map(|(id, attempt)| Completion {
                    delivery_id: *id,
                    attempt: *attempt,
                    status: DeliveryStatus::Retrying,
                    next_attempt_at: Some(now),
                    response_code: None,
                    response_body: None,
                    error_message: Some("dispatcher shut down before the endpoint answered".into()),
                    started_at: now,
                    duration_ms: 0,
                })
                .collect();
            match s.store.delivery_complete_many(&completions, now).await {
                Ok(n) => tracing::warn!(
                    requeued = n,
                    "shutdown deadline passed; requeued unfinished deliveries"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot requeue unfinished deliveries; their leases will expire")
                }
            }
        }
        drop(tx);
        let _ = completer.await;
        listener_stop.cancel();
        let _ = listener.await;
        tracing::info!("dispatcher stopped");
        Ok(())
    }
}

fn spawn_attempt(
    s: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    tx: &mpsc::Sender<Completion>,
    d: ClaimedDelivery,
) {
    let permit = permits
        .clone()
        .try_acquire_owned()
        .expect("claims never exceed the free slots");
    s.track(&d);
    tasks.spawn(execute(s.clone(), d, permit, tx.clone()));
}

impl Shared {
    fn track(&self, d: &ClaimedDelivery) {
        let mut f = self.inflight.lock().expect("in-flight lock");
        f.deliveries.insert(d.id, (d.webhook_id, d.attempt));
        *f.per_webhook.entry(d.webhook_id).or_default() += 1;
    }

    fn untrack(&self, d: &ClaimedDelivery) {
        let mut f = self.inflight.lock().expect("in-flight lock");
        f.deliveries.remove(&d.id);
        if let Some(n) = f.per_webhook.get_mut(&d.webhook_id) {
            if *n == self.config.endpoint_concurrency {
                // Its queued work may be claimed again.
                self.cap_freed.store(true, Ordering::Relaxed);
            }
            *n -= 1;
            if *n == 0 {
                f.per_webhook.remove(&d.webhook_id);
            }
        }
    }

    /// Webhooks with requests in flight, and how many more each may take
    /// before it reaches its cap.
    fn busy_webhooks(&self) -> (Vec<Uuid>, Vec<i64>) {
        let f = self.inflight.lock().expect("in-flight lock");
        let cap = self.config.endpoint_concurrency as i64;
        f.per_webhook
            .iter()
            .map(|(id, n)| (*id, cap - *n as i64))
            .unzip()
    }

    /// Makes one attempt and decides the delivery's next state.
    async fn attempt(&self, d: &ClaimedDelivery) -> Completion {
        let attempt = if d.webhook_active {
            self.sender.send(d).await
        } else {
            Attempt {
                started_at: self.clock.now(),
                error: Some("webhook is disabled: not sent".into()),
                ..Default::default()
            }
        };
        let now = self.clock.now();
        let completion = retry::complete(d, &attempt, now, rand::random::<f64>());
        let outcome = completion.status.as_str();
        metrics::counter!("postbox_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("postbox_attempt_duration_seconds")
            .record(f64::from(attempt.duration_ms) / 1000.0);
        if completion.status == DeliveryStatus::Success {
            let latency = (now - d.event_created_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("postbox_delivery_latency_seconds").record(latency);
        }
        let error = attempt.error.as_deref().unwrap_or("");
        match completion.status {
            DeliveryStatus::Success => tracing::debug!(
                status = ?attempt.status, duration_ms = attempt.duration_ms, "delivered"
            ),
            DeliveryStatus::Failed => tracing::warn!(
                status = ?attempt.status, duration_ms = attempt.duration_ms, error,
                "delivery failed for good (dead letter)"
            ),
            _ => tracing::info!(
                status = ?attempt.status, duration_ms = attempt.duration_ms, error,
                next_attempt_at = ?completion.next_attempt_at, "attempt failed; will retry"
            ),
        }
        if attempt.gone() {
            match self
                .store
                .webhook_disable(d.webhook_id, "endpoint answered 410 Gone", now)
                .await
            {
                Ok(true) => {
                    tracing::warn!(webhook_id = %d.webhook_id, "webhook disabled: endpoint answered 410 Gone")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(webhook_id = %d.webhook_id, error = %e, "cannot disable webhook after 410")
                }
            }
        }
        completion
    }
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

async fn execute(
    shared: Arc<Shared>,
    d: ClaimedDelivery,
    permit: OwnedSemaphorePermit,
    completions: mpsc::Sender<Completion>,
) {
    // One span per attempt: ids, attempt number and the endpoint's host;
    // never the URL's path or query (they may carry tokens) nor a secret.
    let host = url::Url::parse(&d.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let span = tracing::info_span!(
        "delivery",
        delivery_id = %d.id,
        event_id = %d.event_id,
        webhook_id = %d.webhook_id,
        attempt = d.attempt,
        host = %host,
    );
    let completion = shared.attempt(&d).instrument(span).await;
    // Hand the outcome over before freeing the slot, so that shutdown's
    // flush sees every finished attempt.
    let _ = completions.send(completion).await;
    shared.untrack(&d);
    drop(permit);
    shared.slot_freed.notify_one();
}
