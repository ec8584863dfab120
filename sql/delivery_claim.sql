-- delivery_claim: claims up to $1 due deliveries and commits them as 'sending'
-- before any request is made. $2 = now, $4 = lease in seconds; each claim
-- is returned with its lease_expires_at. Per webhook
-- (fairness across endpoints, the in-flight cap): at most $6[i] rows for the
-- webhook $3[i], which already has requests in flight in this dispatcher
-- (none when $6[i] <= 0), and at most $5 for any other.
-- The attempt counter is incremented here: it is the claim's fencing token.
--
-- Reads deliveries_webhook_due_idx (V5) only:
-- 1. queued: a recursive skip scan that yields each webhook with queued rows
--    once (one index probe per webhook, not per row);
-- 2. ready: of those, the webhooks with room whose earliest queued row is
--    due (one more probe each), earliest first;
-- 3. picked: webhook by webhook, its due rows in due order, up to its room,
--    FOR UPDATE SKIP LOCKED, until $1 rows are taken. The scan is pipelined
--    under the LIMIT, so only the rows taken are locked: a claim locks
--    nothing it does not send, and a webhook at its cap costs one probe
--    whatever its backlog.
-- A delivery whose event row is gone (deleted by hand) cannot be sent: the
-- claim turns it into a dead letter with the reason (returned with a NULL
-- payload, which the store drops) instead of leaving it at the head of its
-- webhook's queue, where it would stop the rows behind it.
-- Endpoints in trouble (issue 15; docs/WEBHOOKS.md): a paused webhook, one
-- throttled by a Retry-After, or one whose breaker is open before its next
-- probe is skipped in ready; webhooks with rate_limit or max_in_flight, or a
-- probe due, take their room from their locked webhook_state row (gated),
-- and the claim writes back what it took (gate_spent). A webhook skipped
-- here keeps its rows queued: no attempt, no budget spent.
-- Claims nothing while the queue is paused. Cost: O(webhooks with queued
-- rows + rows taken), independent of the table's size and of any backlog.
WITH RECURSIVE queued AS (
    (SELECT d.webhook_id
     FROM postbox.deliveries d
     WHERE d.status IN ('pending', 'retrying')
     ORDER BY d.webhook_id
     LIMIT 1)
    UNION ALL
    SELECT (SELECT d.webhook_id
            FROM postbox.deliveries d
            WHERE d.status IN ('pending', 'retrying')
              AND d.webhook_id > q.webhook_id
            ORDER BY d.webhook_id
            LIMIT 1)
    FROM queued q
    WHERE q.webhook_id IS NOT NULL
), ready AS MATERIALIZED (
    SELECT q.webhook_id, r.room, head.due, g.rate_limit, g.max_in_flight,
           (g.rate_limit IS NOT NULL OR g.max_in_flight IS NOT NULL OR g.breaker_state <> 'closed') AS gated
    FROM queued q
    CROSS JOIN LATERAL (
        SELECT coalesce((SELECT b.room
                         FROM unnest($3::uuid[], $6::bigint[]) AS b(webhook_id, room)
                         WHERE b.webhook_id = q.webhook_id
                         LIMIT 1), $5::bigint) AS room
    ) r
    CROSS JOIN LATERAL (
        SELECT d.next_attempt_at AS due
        FROM postbox.deliveries d
        WHERE d.webhook_id = q.webhook_id
          AND d.status IN ('pending', 'retrying')
        ORDER BY d.next_attempt_at
        LIMIT 1
    ) head
    -- Gates (issue 15), one primary-key probe of webhooks and webhook_state:
    CROSS JOIN LATERAL (
        SELECT w.paused, w.rate_limit, w.max_in_flight,
               coalesce(s.breaker_state, 'closed') AS breaker_state,
               s.next_probe_at, s.throttled_until, s.in_flight,
               -- The bucket's whole tokens as of this snapshot (gated
               -- recounts them on the locked row).
               CASE WHEN w.rate_limit IS NULL OR s.tokens_at IS NULL THEN 1
                    ELSE s.tokens + least(coalesce(s.effective_rate, w.rate_limit), w.rate_limit)
                                    * extract(epoch FROM $2 - s.tokens_at)::double precision
               END AS tokens
        FROM postbox.webhooks w
        LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
        WHERE w.id = q.webhook_id
        LIMIT 1  -- a key probe per webhook, never a scan of webhooks
    ) g
    WHERE q.webhook_id IS NOT NULL
      AND r.room > 0
      AND head.due <= $2
      AND NOT (SELECT paused FROM postbox.queue_state)
      -- A batched webhook's rows go by sql/delivery_claim_batch_many.sql.
      AND NOT EXISTS (SELECT 1 FROM postbox.webhooks bw
                      WHERE bw.id = q.webhook_id AND bw.batch IS NOT NULL)
      -- issue 15: paused, throttled by a Retry-After, breaker open until its probe is due.
      AND NOT g.paused
      AND (g.throttled_until IS NULL OR g.throttled_until <= $2)
      AND (g.breaker_state = 'closed' OR g.next_probe_at <= $2)
      -- issue 15: a webhook at its cluster-wide limit as of this snapshot
      -- takes no place among the $1 webhooks (gated rechecks the others).
      AND (g.max_in_flight IS NULL OR g.in_flight < g.max_in_flight OR g.breaker_state <> 'closed')
      AND g.tokens >= 1
    ORDER BY head.due
    LIMIT $1::bigint
), gated AS MATERIALIZED (
    -- issue 15: webhooks with a cluster-wide limit or a probe due take their
    -- room from their webhook_state row, locked (SKIP LOCKED: a row another
    -- dispatcher's claim holds is skipped this round) and read as its newest
    -- version, so that concurrent claims never both spend the same room.
    -- room: probe 1; else the least of the dispatcher's room, max_in_flight
    -- less in_flight, and the whole tokens of the bucket (refilled at the
    -- effective rate since tokens_at, holding at most one second's worth).
    SELECT x.webhook_id, x.probe, x.counted, x.rate, x.tokens_now,
           CASE WHEN x.probe THEN least(1, x.in_flight_room)
                ELSE least(x.room, x.in_flight_room, floor(x.tokens_now)::bigint) END AS room
    FROM (
        SELECT s.webhook_id, r.room, r.max_in_flight IS NOT NULL AS counted,
               s.breaker_state <> 'closed' AS probe,
               coalesce(r.max_in_flight - s.in_flight, r.room)::bigint AS in_flight_room,
               t.rate,
               CASE WHEN t.rate IS NULL THEN r.room::double precision
                    WHEN s.tokens_at IS NULL THEN t.rate
                    ELSE least(t.rate, s.tokens + t.rate * extract(epoch FROM $2 - s.tokens_at)::double precision)
               END AS tokens_now
        FROM ready r
        JOIN postbox.webhook_state s ON s.webhook_id = r.webhook_id
        CROSS JOIN LATERAL (
            SELECT least(coalesce(s.effective_rate, r.rate_limit), r.rate_limit)::double precision AS rate
        ) t
        -- By primary key (= ANY of an array): probes, whatever the plan.
        WHERE s.webhook_id = ANY (ARRAY(SELECT g.webhook_id FROM ready g WHERE g.gated))
          AND r.gated
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ) x
), allowed AS MATERIALIZED (
    SELECT r.webhook_id, r.due, coalesce(g.room, r.room) AS room
    FROM ready r
    LEFT JOIN gated g ON g.webhook_id = r.webhook_id
    WHERE (NOT r.gated OR g.webhook_id IS NOT NULL)
      AND coalesce(g.room, r.room) > 0
    ORDER BY r.due
), picked AS MATERIALIZED (
    SELECT c.id, c.event_id, c.ordering_key, r.webhook_id
    FROM allowed r
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.ordering_key
        FROM postbox.deliveries d
        WHERE d.webhook_id = r.webhook_id
          AND d.status IN ('pending', 'retrying')
          AND d.next_attempt_at <= $2
        ORDER BY d.next_attempt_at
        LIMIT least(r.room, $1::bigint)
        FOR UPDATE OF d SKIP LOCKED
    ) c
    LIMIT $1::bigint
), claimed AS MATERIALIZED (
    SELECT p.id, p.webhook_id, p.ordering_key, e.id IS NOT NULL AS sendable, e.payload::text AS payload, e.created_at AS event_created_at
    FROM picked p
    LEFT JOIN postbox.events e ON e.id = p.event_id
), gate_spent AS (
    -- issue 15: what the claims took from the gated rows: requests in flight
    -- (counted while max_in_flight is set), tokens, and a probe (half_open,
    -- lost after one lease when no outcome arrives).
    UPDATE postbox.webhook_state s
    SET in_flight = s.in_flight + CASE WHEN g.counted THEN t.n ELSE 0 END,
        tokens = CASE WHEN g.rate IS NOT NULL THEN g.tokens_now - t.n ELSE s.tokens END,
        tokens_at = CASE WHEN g.rate IS NOT NULL THEN $2 ELSE s.tokens_at END,
        breaker_state = CASE WHEN g.probe THEN 'half_open' ELSE s.breaker_state END,
        next_probe_at = CASE WHEN g.probe THEN $2 + make_interval(secs => $4) ELSE s.next_probe_at END
    FROM gated g
    JOIN (SELECT c.webhook_id, count(*) AS n FROM claimed c WHERE c.sendable GROUP BY c.webhook_id) t
      ON t.webhook_id = g.webhook_id
    WHERE s.webhook_id = ANY (ARRAY(SELECT g2.webhook_id FROM gated g2))
      AND s.webhook_id = g.webhook_id
), gone_lines AS (
    -- Ordered delivery (V12): a keyed delivery dead-lettered here (its event
    -- is gone) frees its line: queued for the promotion pass.
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT c.webhook_id, c.ordering_key
    FROM claimed c
    WHERE NOT c.sendable AND c.ordering_key IS NOT NULL
)
UPDATE postbox.deliveries d
SET status = CASE WHEN c.sendable THEN 'sending'::postbox.delivery_status ELSE 'failed' END,
    attempts = d.attempts + CASE WHEN c.sendable THEN 1 ELSE 0 END,
    -- The lease starts when the row is written, not when the statement
    -- began: a wait inside the statement does not eat it.
    lease_expires_at = CASE WHEN c.sendable THEN $2 + (clock_timestamp() - statement_timestamp()) + make_interval(secs => $4) END,
    error_message = CASE WHEN c.sendable THEN d.error_message
                         ELSE 'event ' || d.event_id || ' no longer exists: not sent' END,
    completed_at = CASE WHEN c.sendable THEN NULL ELSE $2 END,
    updated_at = $2
FROM claimed c, postbox.webhooks w
WHERE d.id = c.id
  AND w.id = d.webhook_id
RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.lease_expires_at,
          c.payload, c.event_created_at, d.ordering_key, w.ordering_policy,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
          w.headers, w.max_retries, w.retry_delay_seconds, w.active, w.template, w.retry_schedule,
          w.max_in_flight IS NOT NULL AS in_flight_limited
