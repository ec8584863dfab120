-- webhook_insert: creates one webhook for an owner. $1 owner, $2 name,
-- $3 description, $4 url, $5 secret, $6 event types, $7 headers, $8 max
-- retries, $9 retry delay (s), $10 active, $11 paused, $12 rate limit,
-- $13 max in flight, $14 retry schedule, $15 filter, $16 template, $17 batch
-- (V9; NULL: none), $18 ordering policy ('block' or 'skip_failed', V12). Inserts one row (and, by trigger,
-- its postbox.webhook_state row: a new webhook's breaker is closed); no lock
-- beyond them.
WITH w AS (
    INSERT INTO postbox.webhooks
        (owner_id, name, description, url, secret, event_types, headers, max_retries, retry_delay_seconds, active,
         paused, rate_limit, max_in_flight, retry_schedule, filter, template, batch, ordering_policy)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    RETURNING *
)
SELECT w.id, w.name, w.description, w.url, w.event_types, w.headers, w.max_retries, w.retry_delay_seconds,
       w.active, w.verified, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at,
       w.paused, w.rate_limit, w.max_in_flight, w.retry_schedule, w.filter, w.template, w.batch, w.ordering_policy,
       'closed' AS breaker_state, NULL::timestamptz AS breaker_since, NULL::text AS breaker_reason
FROM w
