-- webhook_pause: holds ($3 = true) or releases ($3 = false) one owner's
-- webhook's deliveries ($1 id, $2 owner). While paused, delivery_claim and
-- event_fanout_many claim none of its deliveries: they stay queued with
-- their due time and attempts (no budget spent), and after the release they
-- are claimed in order of due time. Requests already in flight finish.
-- Locks the one row (primary key); answers the webhook as webhook_get does.
WITH w AS (
    UPDATE postbox.webhooks
    SET paused = $3, updated_at = now()
    WHERE id = $1 AND owner_id = $2
    RETURNING *
)
SELECT w.id, w.name, w.description, w.url, w.event_types, w.headers, w.max_retries, w.retry_delay_seconds,
       w.active, w.verified, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at,
       w.paused, w.rate_limit, w.max_in_flight, w.retry_schedule, w.filter, w.template, w.batch, w.ordering_policy,
       coalesce(s.breaker_state, 'closed') AS breaker_state, s.breaker_since, s.breaker_reason
FROM w
LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
