-- webhook_list: one page of an owner's webhooks, newest first ($1 owner,
-- $2 limit, $3 offset), each with its breaker (postbox.webhook_state, by
-- primary key). Reads webhooks_owner_idx (owner_id, created_at); no lock.
SELECT w.id, w.name, w.description, w.url, w.event_types, w.headers, w.max_retries, w.retry_delay_seconds,
       w.active, w.verified, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at,
       w.paused, w.rate_limit, w.max_in_flight, w.retry_schedule, w.filter, w.template, w.batch, w.ordering_policy,
       coalesce(s.breaker_state, 'closed') AS breaker_state, s.breaker_since, s.breaker_reason
FROM postbox.webhooks w
LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
WHERE w.owner_id = $1
ORDER BY w.created_at DESC, w.id DESC
LIMIT $2 OFFSET $3
