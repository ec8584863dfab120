-- delivery_queue_depth: the queue gauges for /metrics, cheap enough to run on
-- every scrape (the route caches it for a second). $1 now.
-- Every delivery count is exact and comes from the counters (view
-- postbox.delivery_totals, see migrations/V4__counters_and_scale.sql), so
-- the cost follows the number of webhooks, not of deliveries;
-- success_estimate keeps its name but is exact now. Events awaiting fan-out: events_fanout_pending_idx (as large as
-- the fan-out backlog). Oldest due: the first entry of deliveries_due_idx at
-- or before $1. No lock.
WITH counted AS MATERIALIZED (
    SELECT t.status, sum(t.n)::bigint AS n
    FROM postbox.delivery_totals t
    GROUP BY t.status
), c AS MATERIALIZED (  -- evaluated once, though read by several columns
    SELECT
        coalesce((SELECT n FROM counted WHERE status = 'pending'), 0) AS pending,
        coalesce((SELECT n FROM counted WHERE status = 'retrying'), 0) AS retrying,
        coalesce((SELECT n FROM counted WHERE status = 'sending'), 0) AS sending,
        coalesce((SELECT n FROM counted WHERE status = 'failed'), 0) AS failed,
        coalesce((SELECT n FROM counted WHERE status = 'success'), 0) AS success,
        (SELECT count(*) FROM postbox.events WHERE fanout_pending) AS fanout_pending,
        (SELECT min(next_attempt_at) FROM postbox.deliveries
         WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1) AS oldest_due,
        (SELECT paused FROM postbox.queue_state) AS paused,
        -- issue 15: webhooks in trouble, through webhook_state_breaker_idx
        -- and webhooks_paused_idx (V10).
        (SELECT count(*) FROM postbox.webhook_state WHERE breaker_state = 'open') AS breakers_open,
        (SELECT count(*) FROM postbox.webhook_state WHERE breaker_state = 'half_open') AS breakers_half_open,
        (SELECT count(*) FROM postbox.webhooks WHERE paused) AS webhooks_paused
)
SELECT pending, retrying, sending, failed, fanout_pending,
       success AS success_estimate,
       coalesce(extract(epoch FROM $1 - oldest_due)::float8, 0) AS oldest_due_seconds,
       paused, breakers_open, breakers_half_open, webhooks_paused
FROM c
