//! Row types shared by the store and its callers, and the Rust twin of the
//! SQL enum `postbox.delivery_status`.

use chrono::{DateTime, Utc};
use postgres_types::{FromSql, ToSql};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `postbox.delivery_status`: the seven states of docs/STATE_MACHINE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ToSql, FromSql, Serialize, Deserialize)]
#[postgres(name = "delivery_status")]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Queued, due at `next_attempt_at`.
    #[postgres(name = "pending")]
    Pending,
    /// Claimed by a dispatcher; a request is in flight under a lease.
    #[postgres(name = "sending")]
    Sending,
    #[postgres(name = "success")]
    Success,
    /// Retries spent: the dead letter.
    #[postgres(name = "failed")]
    Failed,
    /// A failed attempt; waiting for the next one at `next_attempt_at`.
    #[postgres(name = "retrying")]
    Retrying,
    /// Ordered delivery (V11): waiting behind an earlier delivery of the same
    /// (webhook, ordering key); not claimable, no attempt spent.
    #[postgres(name = "held")]
    Held,
    /// Superseded by a newer event of the same key and type before it was
    /// delivered (`error_message` names it). Final.
    #[postgres(name = "cancelled")]
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in the order of the SQL enum.
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Success,
        DeliveryStatus::Failed,
        DeliveryStatus::Retrying,
        DeliveryStatus::Held,
        DeliveryStatus::Cancelled,
    ];

    /// The SQL enum's label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// The status whose label is `s`.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery claimed for sending, with everything the request needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// The attempt number this claim holds (1 = first): the fencing token.
    pub attempt: i32,
    /// The event's payload as stored, as JSON text.
    pub payload: String,
    pub event_created_at: DateTime<Utc>,
    pub url: String,
    pub secret: String,
    /// Still signing during a rotation's grace period.
    pub previous_secret: Option<String>,
    pub headers: serde_json::Value,
    pub max_retries: i32,
    pub retry_delay_seconds: i32,
    /// Seconds before each retry; when set it replaces `max_retries` and
    /// `retry_delay_seconds`.
    pub retry_schedule: Option<Vec<i32>>,
    pub webhook_active: bool,
    /// When the claim's lease runs out, as written in the database (the
    /// claim's `now` plus the lease plus any time its statement waited).
    pub lease_expires_at: DateTime<Utc>,
    /// The webhook's body template (`postbox.webhooks.template`): `"slack"`,
    /// `"discord"`, `"teams"` or `{"body": "<jinja>"}`; `None` for the
    /// standard body.
    pub template: Option<serde_json::Value>,
    /// The event's ordering key (V12): this delivery is its (webhook, key)
    /// line's head; its outcome may let the next one go.
    pub ordering_key: Option<String>,
    /// The webhook's `ordering_policy` is `skip_failed`: a failed attempt
    /// takes this delivery out of its key's line.
    pub skip_failed: bool,
    /// The webhook has a `maxInFlight` (issue 15): its in-flight count in
    /// `postbox.webhook_state` drops only when the outcome is written, so the
    /// completer writes such outcomes without delay.
    pub in_flight_limited: bool,
    /// Set when this claim is a batch request: its events, the first of
    /// which is the claim's own (`id`, `event_id`, ... above; `attempt` is
    /// the highest of the members').
    pub batch: Option<ClaimedBatch>,
}

/// The deliveries one batch request carries (SPEC 7.3), in event order
/// (created_at, then id).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedBatch {
    /// The batch id: the request's `webhook-id`, kept on every retry of the
    /// same batch (a UUIDv7; its time is the body's `timestamp`).
    pub id: Uuid,
    pub members: Vec<BatchMember>,
}

/// One delivery of a batch, with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMember {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// This delivery's attempt number: its own fencing token.
    pub attempt: i32,
    /// The event's payload as stored, as JSON text.
    pub payload: String,
    pub event_created_at: DateTime<Utc>,
    /// The event's ordering key, if any.
    pub ordering_key: Option<String>,
}

#[cfg(test)]
impl ClaimedDelivery {
    /// A first attempt for `http://x`, for unit tests to adjust.
    pub(crate) fn sample() -> ClaimedDelivery {
        ClaimedDelivery {
            id: Uuid::nil(),
            webhook_id: Uuid::nil(),
            event_id: Uuid::nil(),
            event_type: "project.updated".into(),
            attempt: 1,
            payload: "{}".into(),
            event_created_at: DateTime::UNIX_EPOCH,
            url: "http://x".into(),
            secret: "whsec_AAAA".into(),
            previous_secret: None,
            headers: serde_json::json!({}),
            max_retries: 3,
            retry_delay_seconds: 60,
            retry_schedule: None,
            webhook_active: true,
            lease_expires_at: DateTime::UNIX_EPOCH,
            template: None,
            ordering_key: None,
            skip_failed: false,
            in_flight_limited: false,
            batch: None,
        }
    }
}

/// The recorded result of one attempt, ready for `delivery_complete_many`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub delivery_id: Uuid,
    /// The delivery's webhook (the line an ordered delivery frees).
    pub webhook_id: Uuid,
    pub attempt: i32,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub response_code: Option<i32>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// A 429/503's `Retry-After`, as a time: the whole webhook is held
    /// until then (`webhook_state.throttled_until`).
    pub throttle_until: Option<DateTime<Utc>>,
    /// What the attempt says about the endpoint, for its circuit breaker:
    /// `Some(true)` a 2xx, `Some(false)` a failure, `None` nothing (no
    /// request made, requeued, or a 429, which throttles but is no failure).
    pub endpoint_ok: Option<bool>,
    /// The delivery's ordering key (V12): when set, an outcome that ends the
    /// delivery (success, failed) or takes it out of line (`leave_line`)
    /// lets the next delivery of its (webhook, key) line go.
    pub ordering_key: Option<String>,
    /// A failed attempt under `skip_failed`: the delivery retries out of its
    /// key's line (`ordering_seq` set to NULL).
    pub leave_line: bool,
}

impl Completion {
    /// Whether this outcome may free its (webhook, ordering key) line: the
    /// line's row must then be locked before it is written and the next
    /// delivery promoted after (`Store::delivery_complete_many`).
    pub fn frees_line(&self) -> bool {
        self.ordering_key.is_some()
            && (self.leave_line
                || matches!(
                    self.status,
                    DeliveryStatus::Success | DeliveryStatus::Failed
                ))
    }
}

/// What `delivery_complete_many` did with a batch of outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompleteReport {
    /// Outcomes written.
    pub applied: u64,
    /// Outcomes not written because another transaction held their row
    /// locked: still current, to be written again.
    pub skipped: Vec<Uuid>,
    /// Circuit-breaker transitions the batch caused: webhook and new state
    /// (`open` or `closed`).
    pub breaker: Vec<(Uuid, String)>,
    /// Held deliveries promoted because an outcome freed their line: due now.
    pub promoted: u64,
}

/// The circuit breaker's rule, applied by `delivery_complete_many` and
/// `delivery_claim` (docs/WEBHOOKS.md, "Circuit breaker").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerRule {
    /// Failed attempts in a row (429 not counted) that open a closed breaker.
    pub open_after_failures: i32,
    /// Seconds from opening to the first probe.
    pub first_probe_secs: i32,
    /// The longest wait between probes, in seconds; each failed probe
    /// doubles the wait up to this.
    pub max_probe_secs: i32,
}

impl BreakerRule {
    /// 10 failures in a row; probes after 30 s, 1 min, 2 min, ... up to 30 min.
    pub const DEFAULT: BreakerRule = BreakerRule {
        open_after_failures: 10,
        first_probe_secs: 30,
        max_probe_secs: 1800,
    };
}

/// What one fan-out batch did, and what it claimed.
#[derive(Debug, Clone, Default)]
pub struct FanoutResult {
    /// Events taken from the outbox (done or partial).
    pub events: i64,
    /// Events of those with more webhooks to fan out than this statement's
    /// share: still `fanout_pending`, continued by the next statement.
    pub partial: i64,
    /// Deliveries created (claimed or queued).
    pub deliveries: i64,
    /// Deliveries queued as pending for webhooks that were not at their cap.
    pub queued: i64,
    /// Earliest due time of queued work as of the statement.
    pub next_due: Option<DateTime<Utc>>,
    /// Whether the wake-up barrier was clear during the statement.
    pub barrier_clear: bool,
    /// Ordered delivery: lines wait in `postbox.ordering_dirty` for the
    /// promotion pass (`Store::ordering_promote_dirty`).
    pub lines_dirty: bool,
    /// Deliveries claimed at once (status 'sending', attempt 1).
    pub claimed: Vec<ClaimedDelivery>,
}

/// The most deliveries one fan-out statement creates, shared out between
/// the events of its batch: bounds the statement's time (about 30 us per
/// delivery; docs/PERFORMANCE.md) whatever the number of webhooks an owner has.
pub const FANOUT_MAX_DELIVERIES: i64 = 1000;

/// The claim parameters shared by `event_fanout_many` and `delivery_claim`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits<'a> {
    /// At most this many deliveries.
    pub limit: i64,
    /// Webhooks with requests in flight, and how many more each may take
    /// (`busy_room[i]` for `busy_webhooks[i]`; 0 or less: none).
    pub busy_webhooks: &'a [uuid::Uuid],
    pub busy_room: &'a [i64],
    pub lease: std::time::Duration,
    /// At most this many deliveries for any other webhook in one claim.
    pub per_webhook: i64,
}
