-- webhook_update: changes the fields given (NULL = keep) of one owner's
-- webhook. $1 id, $2 owner, $3 name, $4 description given?, $5 description,
-- $6 url, $7 event types, $8 headers, $9 max retries, $10 retry delay,
-- $11 active, $12 paused, $13 rate limit given?, $14 rate limit (NULL
-- clears), $15 max in flight given?, $16 max in flight, $17 retry schedule
-- given?, $18 retry schedule; $19/$21/$23 whether filter/template/batch are
-- given, $20/$22/$24 their values (given as NULL: cleared); $25 ordering
-- policy (NULL = keep; V12). Setting active = true clears disabled_at and
-- disabled_reason. Locks the one row (primary key); reads its breaker.
WITH w AS (
    UPDATE postbox.webhooks
    SET name = coalesce($3, name),
        description = CASE WHEN $4::boolean THEN $5 ELSE description END,
        url = coalesce($6, url),
        event_types = coalesce($7, event_types),
        headers = coalesce($8, headers),
        max_retries = coalesce($9, max_retries),
        retry_delay_seconds = coalesce($10, retry_delay_seconds),
        active = coalesce($11, active),
        disabled_at = CASE WHEN $11 IS TRUE THEN NULL ELSE disabled_at END,
        disabled_reason = CASE WHEN $11 IS TRUE THEN NULL ELSE disabled_reason END,
        paused = coalesce($12, paused),
        rate_limit = CASE WHEN $13::boolean THEN $14 ELSE rate_limit END,
        max_in_flight = CASE WHEN $15::boolean THEN $16 ELSE max_in_flight END,
        retry_schedule = CASE WHEN $17::boolean THEN $18::integer[] ELSE retry_schedule END,
        filter = CASE WHEN $19::boolean THEN $20::jsonb ELSE filter END,
        template = CASE WHEN $21::boolean THEN $22::jsonb ELSE template END,
        batch = CASE WHEN $23::boolean THEN $24::jsonb ELSE batch END,
        ordering_policy = coalesce($25::text, ordering_policy),
        updated_at = now()
    WHERE id = $1 AND owner_id = $2
    RETURNING *
)
SELECT w.id, w.name, w.description, w.url, w.event_types, w.headers, w.max_retries, w.retry_delay_seconds,
       w.active, w.verified, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at,
       w.paused, w.rate_limit, w.max_in_flight, w.retry_schedule, w.filter, w.template, w.batch, w.ordering_policy,
       coalesce(s.breaker_state, 'closed') AS breaker_state, s.breaker_since, s.breaker_reason
FROM w
LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
