-- delivery_complete_many: records the outcomes of many attempts in one round
-- trip, and answers which of them it applied and which it skipped.
-- $1 ids, $2 attempts, $3 new statuses, $4 next_attempt_at (retrying only),
-- $5 response codes, $6 response bodies, $7 error messages, $8 started_at,
-- $9 duration_ms, $10 now.
--
-- Fencing: an outcome applies only to the attempt that produced it
-- (attempts = o.attempt, the claim's token) while the row is still 'sending',
-- or was rescued after its lease expired and not claimed again (the rescued
-- marker: 'retrying', or 'failed' for a test send, with lease_expires_at kept
-- by sql/delivery_rescue_expired.sql). A late real outcome then replaces the
-- rescue's "lease expired" attempt row; after a new claim it changes nothing.
--
-- Locks: the rows named, by primary key (d.id = ANY ($1): an index scan
-- whatever the plan, generic or not, and the table's size), FOR UPDATE SKIP
-- LOCKED: an outcome
-- never waits for a row another transaction holds (a webhook DELETE cascading
-- over its history, a manual UPDATE), so one locked row cannot hold up the
-- others, and the completer never waits on a lock (no lock cycle with a
-- DELETE). Answers (id, applied): true for each outcome written, false for
-- each skipped because its row was locked (the caller retries it); an outcome
-- whose attempt is no longer current is in neither.
WITH outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::postbox.delivery_status[], $4::timestamptz[],
                $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::int[])
         AS o(id, attempt, status, next_attempt_at, response_code, response_body, error_message, started_at, duration_ms)
), locked AS (
    -- The same test, rechecked on the newest row version under the lock.
    SELECT d.id
    FROM postbox.deliveries d
    JOIN outcome o ON o.id = d.id
    WHERE d.id = ANY ($1::uuid[])
      AND d.attempts = o.attempt
      AND (d.status = 'sending'
           OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL))
    FOR UPDATE OF d SKIP LOCKED
), current AS (
    -- Only the outcomes the lock did not take (usually none, so usually no
    -- second read): the same test, as of the statement's snapshot, without
    -- locking, tells a row held elsewhere (skipped: retried) from one whose
    -- attempt is no longer current (fenced out: dropped).
    SELECT d.id
    FROM postbox.deliveries d
    JOIN outcome o ON o.id = d.id
    WHERE d.id = ANY (ARRAY(SELECT o2.id FROM outcome o2
                            WHERE o2.id NOT IN (SELECT l.id FROM locked l)))
      AND d.attempts = o.attempt
      AND (d.status = 'sending'
           OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL))
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
    FROM outcome o, locked l
    WHERE d.id = ANY ($1::uuid[])
      AND d.id = o.id
      AND l.id = o.id
    RETURNING d.id, d.webhook_id, d.status
), verified AS (
    -- Best effort, and never waits: a webhook row locked elsewhere (an API
    -- update or delete) is left for a later success.
    UPDATE postbox.webhooks w
    SET verified = true
    WHERE w.id IN (
        SELECT v.id FROM postbox.webhooks v
        WHERE v.id IN (SELECT a.webhook_id FROM applied a WHERE a.status = 'success')
          AND NOT v.verified
        FOR NO KEY UPDATE SKIP LOCKED
    )
), recorded AS (
    INSERT INTO postbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, response_code, response_body, error_message)
    SELECT o.id, o.attempt, o.started_at, o.duration_ms, o.response_code, o.response_body, o.error_message
    FROM outcome o
    JOIN applied a ON a.id = o.id
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET started_at = excluded.started_at,
        duration_ms = excluded.duration_ms,
        response_code = excluded.response_code,
        response_body = excluded.response_body,
        error_message = excluded.error_message
)
SELECT a.id, true AS applied FROM applied a
UNION ALL
SELECT c.id, false FROM current c
WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.id = c.id)
