-- delivery_complete_many: records the outcomes of many attempts in one round
-- trip. Each outcome applies only while its row is still 'sending' with the
-- same attempt number (the fencing token), so a late write after a lease was
-- rescued and re-claimed changes nothing. Every applied outcome also lands in
-- delivery_attempts, and a success marks its webhook verified.
-- $1 ids, $2 attempts, $3 new statuses, $4 next_attempt_at (retrying only),
-- $5 response codes, $6 response bodies, $7 error messages, $8 started_at,
-- $9 duration_ms, $10 now. Locks only the rows named, by primary key.
WITH outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::postbox.delivery_status[], $4::timestamptz[],
                $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::int[])
         AS o(id, attempt, status, next_attempt_at, response_code, response_body, error_message, started_at, duration_ms)
), applied AS (
    UPDATE postbox.deliveries d
    SET status = o.status,
        next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at),
        lease_expires_at = NULL,
        response_code = o.response_code,
        response_body = o.response_body,
        error_message = o.error_message,
        updated_at = $10::timestamptz,
        completed_at = CASE WHEN o.status IN ('success', 'failed') THEN $10::timestamptz END
    FROM outcome o
    WHERE d.id = o.id
      AND d.status = 'sending'
      AND d.attempts = o.attempt
    RETURNING d.id, d.webhook_id, d.status
), verified AS (
    -- Best effort, and never waits: a webhook row locked elsewhere (an API
    -- update or delete) is left for a later success. Waiting here could
    -- deadlock with a delete that cascades to the rows updated above.
    UPDATE postbox.webhooks w
    SET verified = true
    WHERE w.id IN (
        SELECT v.id FROM postbox.webhooks v
        WHERE v.id IN (SELECT a.webhook_id FROM applied a WHERE a.status = 'success')
          AND NOT v.verified
        FOR NO KEY UPDATE SKIP LOCKED
    )
)
INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, response_code, response_body, error_message)
SELECT o.id, o.attempt, o.started_at, o.duration_ms, o.response_code, o.response_body, o.error_message
FROM outcome o
JOIN applied a ON a.id = o.id
ON CONFLICT (delivery_id, attempt) DO NOTHING
