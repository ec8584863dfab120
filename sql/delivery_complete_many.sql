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
-- Locks: the rows named, one primary-key probe per outcome (a LATERAL
-- subquery per outcome row), FOR UPDATE SKIP LOCKED: an outcome never waits
-- for a row another transaction holds (a webhook DELETE cascading over its
-- history, a manual UPDATE), so one locked row cannot hold up the others,
-- and the completer never waits on a lock (no lock cycle with a DELETE).
-- Answers (id, applied): true for each outcome written, false for each
-- skipped because its row was locked (the caller retries it); an outcome
-- whose attempt is no longer current is in neither.
--
-- Plan shape: no step joins two row sets whose sizes the planner must guess.
-- A generic plan estimates the unnest at 10 rows, and a join of two such
-- sets became a nested loop rescanning one CTE for each row of the other:
-- O(n^2), 45 ms for 256 outcomes (docs/PERFORMANCE.md, "Completion"). Here
-- every step walks the outcomes once and reaches deliveries by primary key,
-- and the UPDATE returns what the attempt row needs.
WITH outcome AS MATERIALIZED (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::postbox.delivery_status[], $4::timestamptz[],
                $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::int[])
         AS o(id, attempt, status, next_attempt_at, response_code, response_body, error_message, started_at, duration_ms)
), taken AS MATERIALIZED (
    -- Each outcome, and whether its row is current and now locked by us.
    SELECT o.*, l.id IS NOT NULL AS locked
    FROM outcome o
    LEFT JOIN LATERAL (
        SELECT d.id
        FROM postbox.deliveries d
        WHERE d.id = o.id
          AND d.attempts = o.attempt
          AND (d.status = 'sending'
               OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL))
        FOR UPDATE OF d SKIP LOCKED
    ) l ON true
), applied AS (
    UPDATE postbox.deliveries d
    SET status = t.status,
        next_attempt_at = coalesce(t.next_attempt_at, d.next_attempt_at),
        lease_expires_at = NULL,
        response_code = t.response_code,
        response_body = t.response_body,
        error_message = t.error_message,
        updated_at = $10::timestamptz,
        completed_at = CASE WHEN t.status IN ('success', 'failed') THEN $10::timestamptz END
    FROM taken t
    WHERE t.locked
      AND d.id = t.id
      AND d.id = ANY ($1::uuid[])
    RETURNING d.id, d.webhook_id, d.status, t.attempt, t.started_at, t.duration_ms,
              t.response_code, t.response_body, t.error_message
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
    SELECT a.id, a.attempt, a.started_at, a.duration_ms, a.response_code, a.response_body, a.error_message
    FROM applied a
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET started_at = excluded.started_at,
        duration_ms = excluded.duration_ms,
        response_code = excluded.response_code,
        response_body = excluded.response_body,
        error_message = excluded.error_message
)
SELECT a.id, true AS applied FROM applied a
UNION ALL
-- Outcomes the lock did not take (usually none, so usually no second read):
-- the same test, as of the statement's snapshot, without locking, tells a
-- row held elsewhere (skipped: retried) from one whose attempt is no longer
-- current (fenced out: dropped).
SELECT t.id, false
FROM taken t
WHERE NOT t.locked
  AND EXISTS (SELECT 1
              FROM postbox.deliveries d
              WHERE d.id = t.id
                AND d.attempts = t.attempt
                AND (d.status = 'sending'
                     OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL)))
