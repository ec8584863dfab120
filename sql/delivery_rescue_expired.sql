-- delivery_rescue_expired: returns up to $2 deliveries whose lease expired
-- (their dispatcher died or hung mid-request) to the queue, due at $1 (now),
-- and records the lost attempt. Reads through deliveries_lease_idx; SKIP LOCKED
-- so rescuers never wait on each other.
WITH expired AS (
    SELECT d.id
    FROM postbox.deliveries d
    WHERE d.status = 'sending'
      AND d.lease_expires_at < $1
    ORDER BY d.lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE postbox.deliveries d
    SET status = 'retrying',
        lease_expires_at = NULL,
        next_attempt_at = $1,
        error_message = 'lease expired: the dispatcher stopped before recording an outcome',
        updated_at = $1
    FROM expired
    WHERE d.id = expired.id
    RETURNING d.id, d.attempts, d.error_message
)
INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, error_message)
SELECT r.id, r.attempts, $1, 0, r.error_message
FROM rescued r
ON CONFLICT (delivery_id, attempt) DO NOTHING
