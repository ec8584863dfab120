-- delivery_rescue_expired: returns up to $2 deliveries whose lease expired
-- (their dispatcher died or hung mid-request) to the queue, due at $1 (now),
-- and records the lost attempt. A test send (test_send) is never retried: its
-- rescue is final, a dead letter saying why.
-- The rescued row keeps its lease_expires_at (the "rescued" marker) and its
-- attempt number until a new claim increments it: an outcome of that attempt
-- written late (the database was away, a lock held it up) still counts, and
-- replaces the "lease expired" attempt row (sql/delivery_complete_many.sql).
-- The deliveries $3 are left alone: the dispatcher holds their outcome,
-- waiting to write it (a row locked elsewhere past the lease), so a rescue
-- would only send them again.
-- Reads through deliveries_lease_idx; SKIP LOCKED so rescuers never wait on
-- each other nor on a completion.
WITH expired AS (
    SELECT d.id
    FROM postbox.deliveries d
    WHERE d.status = 'sending'
      AND d.lease_expires_at < $1
      AND NOT (d.id = ANY ($3::uuid[]))
    ORDER BY d.lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE postbox.deliveries d
    SET status = CASE WHEN d.test_send THEN 'failed' ELSE 'retrying' END::postbox.delivery_status,
        next_attempt_at = $1,
        error_message = CASE WHEN d.test_send
            THEN 'lease expired during a test send: the dispatcher stopped before recording an outcome; a test is not retried'
            ELSE 'lease expired: the dispatcher stopped before recording an outcome' END,
        completed_at = CASE WHEN d.test_send THEN $1::timestamptz END,
        updated_at = $1
    FROM expired
    WHERE d.id = expired.id
    RETURNING d.id, d.webhook_id, d.attempts, d.error_message, d.test_send
), released AS (
    -- issue 15: a rescued request is no longer in flight (the counter kept
    -- for webhooks with max_in_flight; waits for the row if a claim holds it).
    UPDATE postbox.webhook_state s
    SET in_flight = greatest(s.in_flight - r.n, 0)
    FROM (SELECT x.webhook_id, count(*)::int AS n FROM rescued x WHERE NOT x.test_send
          GROUP BY x.webhook_id) r,
         postbox.webhooks w
    WHERE s.webhook_id = r.webhook_id
      AND w.id = r.webhook_id
      AND w.max_in_flight IS NOT NULL
)
INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, error_message)
SELECT r.id, r.attempts, $1, 0, r.error_message
FROM rescued r
ON CONFLICT (delivery_id, attempt) DO NOTHING
