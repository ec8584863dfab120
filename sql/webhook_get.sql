-- webhook_get: one webhook of one owner ($1 id, $2 owner) with its breaker
-- (postbox.webhook_state); another owner's id finds nothing. Primary-key
-- lookups, no lock.
SELECT w.id, w.name, w.description, w.url, w.event_types, w.headers, w.max_retries, w.retry_delay_seconds,
       w.active, w.verified, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at,
       w.paused, w.rate_limit, w.max_in_flight, w.retry_schedule, w.filter, w.template, w.batch, w.ordering_policy,
       coalesce(s.breaker_state, 'closed') AS breaker_state, s.breaker_since, s.breaker_reason
FROM postbox.webhooks w
LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
WHERE w.id = $1 AND w.owner_id = $2
