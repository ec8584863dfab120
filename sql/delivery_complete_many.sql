-- delivery_complete_many: records the outcomes of many attempts in one round
-- trip, and answers which of them it applied and which it skipped.
-- $1 ids, $2 attempts, $3 new statuses, $4 next_attempt_at (retrying only),
-- $5 response codes, $6 response bodies, $7 error messages, $8 started_at,
-- $9 duration_ms, $10 now, $11 throttle_until (a 429/503's Retry-After),
-- $12 endpoint_ok (true 2xx, false failed, NULL says nothing), $13-$15 the
-- breaker rule (failures to open, first and longest probe interval, s),
-- $16 leave_line (ordered delivery, skip_failed: a failed attempt takes the
-- delivery out of its key's line, ordering_seq NULL; the caller promotes the
-- next one after, in the same transaction: store::delivery).
-- $17, $18: the (webhook, ordering key) lines these outcomes free: their
-- advisory locks are taken here, in key order (line_locks, as
-- sql/ordering_lines_lock.sql takes them), and held until the transaction
-- that then promotes (sql/delivery_promote_lines.sql) commits. Empty for
-- unordered outcomes.
-- issue 15: the same statement keeps postbox.webhook_state (breaker,
-- in-flight counter, AIMD rate, Retry-After hold) and writes the owners'
-- notifications (breaker opened/closed, dead letters); see touch and below.
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
-- every step walks the outcomes once (the per-webhook steps walk the
-- batch's webhooks), reaches deliveries by primary key, and the UPDATE
-- returns what the attempt row needs. tests/it/plans.rs checks it.
WITH line_locks AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(7138403, hashtext(u.webhook_id::text || '/' || u.ordering_key)) IS NULL AS locked
    FROM (SELECT DISTINCT v.webhook_id, v.ordering_key
          FROM unnest($17::uuid[], $18::text[]) AS v(webhook_id, ordering_key)
          ORDER BY v.webhook_id, v.ordering_key) u
), outcome AS MATERIALIZED (
    SELECT *
    FROM unnest($1::uuid[], $2::int[], $3::postbox.delivery_status[], $4::timestamptz[],
                $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::int[],
                $11::timestamptz[], $12::boolean[], $16::boolean[])
         AS o(id, attempt, status, next_attempt_at, response_code, response_body, error_message, started_at, duration_ms,
              throttle_until, endpoint_ok, leave_line)
    -- The line locks first, once (an InitPlan), before any row is locked.
    WHERE (SELECT count(l.locked) FROM line_locks l) >= 0
), taken AS MATERIALIZED (
    -- Each outcome, and whether its row is current and now locked by us
    -- (with the row's webhook, status before and test flag).
    SELECT o.*, l.id IS NOT NULL AS locked, l.webhook_id, l.was, l.test_send
    FROM outcome o
    LEFT JOIN LATERAL (
        SELECT d.id, d.webhook_id, d.status AS was, d.test_send
        FROM postbox.deliveries d
        WHERE d.id = o.id
          AND d.attempts = o.attempt
          AND (d.status = 'sending'
               OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL))
        FOR UPDATE OF d SKIP LOCKED
    ) l ON true
), touch AS MATERIALIZED (
    -- issue 15: what the outcomes tell each webhook's state row. A success
    -- in the batch resets the failure count (failures of the same batch are
    -- not counted on top).
    SELECT o.webhook_id,
           -- Requests the claim counted (a test send never is).
           count(*) FILTER (WHERE o.was = 'sending' AND NOT o.test_send) AS released,
           count(*) FILTER (WHERE o.endpoint_ok) AS successes,
           count(*) FILTER (WHERE NOT o.endpoint_ok) AS failures,
           bool_or(coalesce(o.response_code IN (429, 503), false)) AS slowed,
           max(o.throttle_until) AS throttle_until,
           max(o.started_at) FILTER (WHERE o.endpoint_ok) AS last_success_at,
           max(o.started_at) FILTER (WHERE NOT o.endpoint_ok) AS last_failure_at,
           (array_agg(coalesce(o.error_message, 'HTTP ' || o.response_code) ORDER BY o.started_at DESC)
                FILTER (WHERE NOT o.endpoint_ok))[1] AS last_error
    FROM taken o
    WHERE o.locked
    GROUP BY o.webhook_id
), needs AS MATERIALIZED (
    -- Only webhooks whose row changes: a failure or a throttle; a success
    -- while failures are counted, the breaker is not closed or the rate is
    -- reduced; a finished request of a webhook with max_in_flight. A healthy
    -- webhook without limits writes nothing here.
    SELECT t.*, w.owner_id, w.max_in_flight, w.rate_limit
    FROM touch t
    JOIN postbox.webhooks w ON w.id = t.webhook_id
    JOIN postbox.webhook_state s ON s.webhook_id = t.webhook_id
    WHERE t.failures > 0 OR t.slowed
       OR (t.released > 0 AND w.max_in_flight IS NOT NULL)
       OR (t.successes > 0
           AND (s.consecutive_failures > 0 OR s.breaker_state <> 'closed'
                OR s.effective_rate < w.rate_limit))
), state_locked AS MATERIALIZED (
    -- Their rows, in key order, never waited for (SKIP LOCKED, like the
    -- deliveries): an outcome whose webhook's row another transaction holds
    -- (a claim, a webhook DELETE) is skipped and written again later, so the
    -- counts never miss an outcome. Read as the newest row versions.
    SELECT s.webhook_id, s.breaker_state, s.consecutive_failures, s.probe_interval_seconds,
           s.effective_rate, s.in_flight, s.throttled_until
    FROM postbox.webhook_state s
    WHERE s.webhook_id IN (SELECT n.webhook_id FROM needs n)
    ORDER BY s.webhook_id
    FOR NO KEY UPDATE OF s SKIP LOCKED
), settled AS MATERIALIZED (
    -- Every outcome, with whether it is written now: locked, and its
    -- webhook's state row needs no change or is locked here (a flag, not a
    -- filter, so that the answer below needs no anti-join).
    SELECT t.*,
           t.locked
           AND (t.webhook_id NOT IN (SELECT n.webhook_id FROM needs n)
                OR t.webhook_id IN (SELECT k.webhook_id FROM state_locked k)) AS written
    FROM taken t
), breaker AS MATERIALIZED (
    -- The breaker rule (docs/WEBHOOKS.md, "Circuit breaker"): $13 failed
    -- attempts in a row open a closed breaker (a 429 is no failure); while
    -- open, one probe goes out when next_probe_at is due (delivery_claim),
    -- first $14 s after opening, the wait doubling after each failed probe
    -- up to $15 s; any success closes it.
    SELECT n.webhook_id, n.owner_id, n.max_in_flight, n.rate_limit, k.breaker_state AS was,
           CASE WHEN n.successes > 0 THEN 0
                ELSE k.consecutive_failures + n.failures END AS failures_now,
           CASE WHEN n.successes > 0 AND k.breaker_state <> 'closed' THEN 'closed'
                WHEN n.successes = 0 AND n.failures > 0 AND k.breaker_state = 'half_open' THEN 'open'
                WHEN n.successes = 0 AND k.breaker_state = 'closed'
                     AND k.consecutive_failures + n.failures >= $13::int THEN 'open'
                ELSE k.breaker_state END AS state_now,
           CASE WHEN k.breaker_state = 'half_open' THEN least(greatest(k.probe_interval_seconds * 2, $14::int), $15::int)
                ELSE $14::int END AS interval_now,
           n.released, n.successes, n.slowed, n.throttle_until, n.last_success_at, n.last_failure_at, n.last_error,
           k.effective_rate, k.in_flight, k.throttled_until
    FROM needs n
    JOIN state_locked k ON k.webhook_id = n.webhook_id
), state_written AS (
    UPDATE postbox.webhook_state s
    SET consecutive_failures = b.failures_now,
        breaker_state = b.state_now,
        breaker_since = CASE WHEN b.state_now = b.was OR (b.was = 'half_open' AND b.state_now = 'open')
                             THEN s.breaker_since ELSE $10::timestamptz END,
        breaker_reason = CASE WHEN b.was = 'closed' AND b.state_now = 'open'
                              THEN b.failures_now || ' failed attempts in a row; last: ' || coalesce(b.last_error, 'failed')
                              ELSE s.breaker_reason END,
        probe_interval_seconds = CASE WHEN b.state_now = 'open' AND b.was <> 'open' THEN b.interval_now
                                      WHEN b.state_now = 'closed' THEN 0
                                      ELSE s.probe_interval_seconds END,
        next_probe_at = CASE WHEN b.state_now = 'open' AND b.was <> 'open'
                             THEN $10::timestamptz + make_interval(secs => b.interval_now)
                             WHEN b.state_now = 'closed' THEN NULL
                             ELSE s.next_probe_at END,
        last_success_at = greatest(s.last_success_at, b.last_success_at),
        last_failure_at = greatest(s.last_failure_at, b.last_failure_at),
        in_flight = CASE WHEN b.max_in_flight IS NOT NULL THEN greatest(b.in_flight - b.released, 0)::int
                         ELSE s.in_flight END,
        -- AIMD on the rate: a 429/503 halves it (at least 1/s), a batch with
        -- a success adds 1/s, up to rate_limit.
        effective_rate = CASE WHEN b.rate_limit IS NULL THEN NULL
                              WHEN b.slowed THEN greatest(coalesce(b.effective_rate, b.rate_limit) / 2, 1)
                              WHEN b.successes > 0 AND coalesce(b.effective_rate, b.rate_limit) + 1 < b.rate_limit
                              THEN coalesce(b.effective_rate, b.rate_limit) + 1
                              WHEN b.successes > 0 THEN NULL
                              ELSE b.effective_rate END,
        throttled_until = CASE WHEN b.throttle_until > coalesce(b.throttled_until, '-infinity')
                               THEN b.throttle_until ELSE b.throttled_until END
    FROM breaker b
    WHERE s.webhook_id = b.webhook_id
), applied AS (
    UPDATE postbox.deliveries d
    SET status = o.status,
        next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at),
        lease_expires_at = NULL,
        response_code = o.response_code,
        response_body = o.response_body,
        error_message = o.error_message,
        updated_at = $10::timestamptz,
        completed_at = CASE WHEN o.status IN ('success', 'failed') THEN $10::timestamptz END,
        ordering_seq = CASE WHEN o.leave_line THEN NULL ELSE d.ordering_seq END
    FROM settled o
    WHERE o.written
      AND d.id = o.id
      AND d.id = ANY ($1::uuid[])
    RETURNING d.id, d.webhook_id, d.status, d.test_send, d.event_id, d.event_type, d.attempts,
              d.response_code, d.error_message, o.started_at, o.duration_ms, o.response_body
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
    SELECT a.id, a.attempts, a.started_at, a.duration_ms, a.response_code, a.response_body, a.error_message
    FROM applied a
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET started_at = excluded.started_at,
        duration_ms = excluded.duration_ms,
        response_code = excluded.response_code,
        response_body = excluded.response_body,
        error_message = excluded.error_message
), notified AS (
    -- issue 15: the owners' operational events (postbox.notifications; its
    -- trigger sends one NOTIFY postbox_notifications per statement).
    INSERT INTO postbox.notifications (owner_id, kind, webhook_id, delivery_id, detail, created_at)
    SELECT b.owner_id,
           CASE WHEN b.state_now = 'open' THEN 'webhook.breaker_opened' ELSE 'webhook.breaker_closed' END,
           b.webhook_id, NULL,
           jsonb_build_object('consecutiveFailures', b.failures_now, 'reason', b.last_error),
           $10::timestamptz
    FROM breaker b
    WHERE (b.was = 'closed' AND b.state_now = 'open') OR (b.was <> 'closed' AND b.state_now = 'closed')
    UNION ALL
    SELECT w.owner_id, 'delivery.dead_lettered', a.webhook_id, a.id,
           jsonb_build_object('eventId', a.event_id, 'eventType', a.event_type, 'attempts', a.attempts,
                              'responseCode', a.response_code, 'error', a.error_message),
           $10::timestamptz
    FROM applied a
    JOIN postbox.webhooks w ON w.id = a.webhook_id
    WHERE a.status = 'failed' AND NOT a.test_send
)
SELECT a.id, true AS applied, NULL::text AS breaker FROM applied a
UNION ALL
-- Outcomes the lock did not take (usually none, so usually no second read):
-- the same test, as of the statement's snapshot, without locking, tells a
-- row held elsewhere (skipped: retried) from one whose attempt is no longer
-- current (fenced out: dropped).
SELECT t.id, false, NULL
FROM taken t
WHERE NOT t.locked
  AND EXISTS (SELECT 1
              FROM postbox.deliveries d
              WHERE d.id = t.id
                AND d.attempts = t.attempt
                AND (d.status = 'sending'
                     OR (d.status IN ('retrying', 'failed') AND d.lease_expires_at IS NOT NULL)))
UNION ALL
-- Locked, but their webhook's state row was not: written again later.
SELECT s.id, false, NULL FROM settled s
WHERE s.locked AND NOT s.written
UNION ALL
-- Breaker transitions, for the metrics.
SELECT b.webhook_id, NULL, b.state_now FROM breaker b WHERE b.state_now <> b.was

