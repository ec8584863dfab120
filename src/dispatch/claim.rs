//! "Fan out, then claim the rest": the one claim round that the producer's
//! pass (and so `run_once`) and the benchmark's queue loop run.
//!
//! New events are fanned out and the first of their deliveries claimed in one
//! statement; due deliveries (retries, requeued, queued by the fan-out) then
//! fill the room left. Every claim is handed to `start` as soon as its
//! statement returns, so the fan-out's requests begin before the second
//! statement runs. Claims never exceed `ClaimPlan::limit`, and the second
//! statement sees the fan-out's claims in the per-webhook caps. A third
//! statement then claims the due batches of batched webhooks (one claim, one
//! request, per batch), which the first two leave alone.
//!
//! Ordered delivery: when the fan-out reports lines queued for promotion
//! (`FanoutResult::lines_dirty`: a producer's supersede, a recover, a
//! replay), the promotion pass runs between the fan-out and the claim, so
//! the deliveries it promotes are claimed in the same round.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{ClaimLimits, ClaimedDelivery, FanoutResult, Store, StoreError};

/// Lines one promotion pass takes from `postbox.ordering_dirty`.
const PROMOTE_BATCH: i64 = 1000;

/// How much one round may claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimPlan {
    /// Events fanned out, and deliveries claimed by both statements together.
    pub limit: usize,
    /// How long each claim stays valid.
    pub lease: Duration,
    /// Deliveries one webhook may have in flight at once.
    pub per_webhook: i64,
}

/// Webhooks with requests in flight, and how many more each may take
/// (`room[i]` for `webhooks[i]`).
#[derive(Debug, Clone, Default)]
pub struct Busy {
    pub webhooks: Vec<Uuid>,
    pub room: Vec<i64>,
}

/// What the second statement of a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rest {
    /// How many it was asked for.
    pub room: usize,
    /// How many it claimed.
    pub claimed: usize,
}

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// The fan-out's summary; its `claimed` list went to `start` (empty here).
    pub fan: FanoutResult,
    /// Claims taken by both statements.
    pub claimed: usize,
    /// The second statement, when it ran.
    pub rest: Option<Rest>,
    /// The round's `now` (what `fan.next_due` is compared with).
    pub now: Option<DateTime<Utc>>,
}

/// Runs one round at `now`. `busy` reports the webhooks in flight (asked
/// before each statement), `want_rest` decides after the fan-out whether due
/// deliveries are looked for, and `start` takes each claim.
pub async fn fan_out_then_claim(
    store: &Store,
    now: DateTime<Utc>,
    plan: ClaimPlan,
    busy: impl Fn() -> Busy,
    want_rest: impl FnOnce(&FanoutResult) -> bool,
    mut start: impl FnMut(ClaimedDelivery),
) -> Result<Round, StoreError> {
    let before = busy();
    let limits = ClaimLimits {
        limit: plan.limit as i64,
        busy_webhooks: &before.webhooks,
        busy_room: &before.room,
        lease: plan.lease,
        per_webhook: plan.per_webhook,
    };
    let mut fan = store
        .event_fanout_many(plan.limit as i64, now, limits)
        .await?;
    let fanned = std::mem::take(&mut fan.claimed);
    let mut claimed = fanned.len();
    fanned.into_iter().for_each(&mut start);
    let room = plan.limit.saturating_sub(claimed);
    let mut promoted = 0;
    if fan.lines_dirty {
        (_, promoted) = store.ordering_promote_dirty(now, PROMOTE_BATCH).await?;
    }
    let mut rest = None;
    if (want_rest(&fan) || promoted > 0) && room > 0 {
        // The fan-out's claims count against their webhooks' caps.
        let after = busy();
        let rows = store
            .delivery_claim(
                now,
                ClaimLimits {
                    limit: room as i64,
                    busy_webhooks: &after.webhooks,
                    busy_room: &after.room,
                    ..limits
                },
            )
            .await?;
        let mut taken = rows.len();
        rows.into_iter().for_each(&mut start);
        // Batched webhooks' due batches, one claim (one request) each.
        if room > taken {
            let after = busy();
            let batches = store
                .delivery_claim_batch_many(
                    now,
                    ClaimLimits {
                        limit: (room - taken) as i64,
                        busy_webhooks: &after.webhooks,
                        busy_room: &after.room,
                        ..limits
                    },
                )
                .await?;
            taken += batches.len();
            batches.into_iter().for_each(&mut start);
        }
        rest = Some(Rest {
            room,
            claimed: taken,
        });
        claimed += taken;
    }
    Ok(Round {
        fan,
        claimed,
        rest,
        now: Some(now),
    })
}
