//! The executor: turns one claim into one attempt and its completion.
//!
//! The steps, in order: prepare the request once (URL parsed, signing keys
//! decoded, body signed: `sender::prepare`), send it (`sender`), classify the
//! answer (`retry::complete`, pure; the jitter comes from the dispatcher's
//! randomness input), then the side effects, each its own step: metrics, the
//! log line, and disabling a webhook whose endpoint answered 410 Gone. It
//! never fails: a receiver's failure is data, and a failed disable is logged
//! (the completion still records the attempt).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use super::cap::Answer;
use super::retry::{self, Attempt};
use super::sender::Sender;
use crate::clock::SharedClock;
use crate::store::{ClaimedDelivery, Completion, DeliveryStatus, Store};

/// The randomness behind retry jitter: each call returns a number in
/// `0.0..1.0`. Production uses [`system_jitter`]; tests fix it.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Jitter from the thread-local random generator.
pub fn system_jitter() -> Jitter {
    Arc::new(rand::random::<f64>)
}

/// The same jitter every time (tests: exact retry times).
pub fn fixed_jitter(value: f64) -> Jitter {
    Arc::new(move || value)
}

pub(super) struct Executor {
    pub(super) store: Store,
    pub(super) sender: Sender,
    pub(super) clock: SharedClock,
    pub(super) jitter: Jitter,
}

impl Executor {
    /// Makes one attempt for `d` and decides the delivery's next state; also
    /// says how the endpoint answered (for its in-flight cap). When `cut_off`
    /// fires (the shutdown deadline) while the request is in flight, the
    /// request is dropped and the delivery given back, due now.
    pub(super) async fn execute(
        &self,
        d: &ClaimedDelivery,
        cut_off: &CancellationToken,
    ) -> (Completion, Answer) {
        let url = Url::parse(&d.url);
        // One span per attempt: ids, attempt number and the endpoint's host;
        // never the URL's path or query (they may carry tokens) nor a secret.
        let host = url.as_ref().ok().and_then(Url::host_str).unwrap_or("");
        let span = tracing::info_span!(
            "delivery",
            delivery_id = %d.id,
            event_id = %d.event_id,
            webhook_id = %d.webhook_id,
            attempt = d.attempt,
            host = %host,
        );
        async {
            let (attempt, sent) = tokio::select! {
                attempt = self.attempt(d) => attempt,
                // Cut off at shutdown: says nothing about the endpoint.
                _ = cut_off.cancelled() => return (self.cut_off(d), Answer::NotSent),
            };
            let now = self.clock.now();
            let mut completion = retry::complete(d, &attempt, now, (self.jitter)());
            if !sent {
                // No request: says nothing about the endpoint's health.
                completion.endpoint_ok = None;
            }
            record_metrics(d, &attempt, &completion, now);
            log_outcome(&attempt, &completion);
            if attempt.gone() {
                self.disable_gone(d, now).await;
            }
            (completion, Answer::of(&attempt, sent))
        }
        .instrument(span)
        .await
    }

    /// The request was cut off at the shutdown deadline: the delivery goes
    /// back to the queue, due now, whatever its retry budget (the endpoint
    /// never answered).
    fn cut_off(&self, d: &ClaimedDelivery) -> Completion {
        tracing::warn!("shutdown deadline passed before the endpoint answered; requeued");
        self.requeue(d, "dispatcher shut down before the endpoint answered")
    }

    /// Back to the queue, due now, with `reason` as the attempt's error.
    fn requeue(&self, d: &ClaimedDelivery, reason: &str) -> Completion {
        let now = self.clock.now();
        Completion {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            attempt: d.attempt,
            status: DeliveryStatus::Retrying,
            next_attempt_at: Some(now),
            response_code: None,
            response_body: None,
            error_message: Some(reason.into()),
            started_at: now,
            duration_ms: 0,
            throttle_until: None,
            endpoint_ok: None,
            ordering_key: d.ordering_key.clone(),
            leave_line: false,
        }
    }

    /// The claim came back with too little lease left to send (`left`): the
    /// delivery goes back to the queue, due now, whatever its retry budget
    /// (no request was made), fenced by the claim's token.
    pub(super) fn give_back(&self, d: &ClaimedDelivery, left: std::time::Duration) -> Completion {
        tracing::warn!(
            delivery_id = %d.id,
            lease_left_ms = left.as_millis() as u64,
            "claim returned with too little lease left to send (its statement waited on a lock); requeued"
        );
        self.requeue(
            d,
            "claim's lease ran out before the request could start: not sent",
        )
    }

    /// Prepares and sends the request; a disabled webhook gets none. The
    /// flag says whether a request was made.
    async fn attempt(&self, d: &ClaimedDelivery) -> (Attempt, bool) {
        let started_at = self.clock.now();
        if !d.webhook_active {
            return (
                Attempt::not_sent(started_at, "webhook is disabled: not sent"),
                false,
            );
        }
        match self.sender.prepare(d, started_at) {
            Ok(request) => (self.sender.send_prepared(request).await, true),
            Err(reason) => (Attempt::not_sent(started_at, reason), false),
        }
    }

    async fn disable_gone(&self, d: &ClaimedDelivery, now: DateTime<Utc>) {
        disable_gone(&self.store, d.webhook_id, now).await;
    }
}

/// The completions one claim's outcome writes: its own, or for a batch one
/// per member (the same outcome, each fenced by its own attempt number), so
/// a failed batch is retried as a whole.
pub(super) fn spread(d: &ClaimedDelivery, c: Completion) -> Vec<Completion> {
    match &d.batch {
        None => vec![c],
        Some(batch) => batch
            .members
            .iter()
            .map(|m| Completion {
                delivery_id: m.delivery_id,
                attempt: m.attempt,
                leave_line: c.leave_line && m.ordering_key.is_some(),
                ordering_key: m.ordering_key.clone(),
                ..c.clone()
            })
            .collect(),
    }
}

/// 410 Gone: the endpoint wants no more deliveries, so its webhook is
/// disabled (docs/WEBHOOKS.md), after a delivery or a test send alike.
pub async fn disable_gone(store: &Store, webhook_id: uuid::Uuid, now: DateTime<Utc>) {
    let reason = "endpoint answered 410 Gone";
    match store.webhook_disable(webhook_id, reason, now).await {
        Ok(true) => {
            tracing::warn!(webhook_id = %webhook_id, "webhook disabled: endpoint answered 410 Gone")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(webhook_id = %webhook_id, error = %e, "cannot disable webhook after 410")
        }
    }
}

fn record_metrics(d: &ClaimedDelivery, attempt: &Attempt, c: &Completion, now: DateTime<Utc>) {
    let outcome = c.status.as_str();
    let deliveries = d.batch.as_ref().map_or(1, |b| b.members.len() as u64);
    metrics::counter!("postbox_deliveries_total", "outcome" => outcome).increment(deliveries);
    metrics::histogram!("postbox_attempt_duration_seconds")
        .record(f64::from(attempt.duration_ms) / 1000.0);
    if c.status == DeliveryStatus::Success {
        let latency = (now - d.event_created_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("postbox_delivery_latency_seconds").record(latency);
    }
}

fn log_outcome(attempt: &Attempt, c: &Completion) {
    let error = attempt.error.as_deref().unwrap_or("");
    match c.status {
        DeliveryStatus::Success => tracing::debug!(
            status = ?attempt.status, duration_ms = attempt.duration_ms, "delivered"
        ),
        DeliveryStatus::Failed => tracing::warn!(
            status = ?attempt.status, duration_ms = attempt.duration_ms, error,
            "delivery failed for good (dead letter)"
        ),
        _ => tracing::info!(
            status = ?attempt.status, duration_ms = attempt.duration_ms, error,
            next_attempt_at = ?c.next_attempt_at, "attempt failed; will retry"
        ),
    }
}
