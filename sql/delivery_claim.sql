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
    SELECT q.webhook_id, r.room, head.due
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
    WHERE q.webhook_id IS NOT NULL
      AND r.room > 0
      AND head.due <= $2
      AND NOT (SELECT paused FROM postbox.queue_state)
      -- A batched webhook's rows go by sql/delivery_claim_batch_many.sql.
      AND NOT EXISTS (SELECT 1 FROM postbox.webhooks bw
                      WHERE bw.id = q.webhook_id AND bw.batch IS NOT NULL)
    ORDER BY head.due
    LIMIT $1::bigint
), picked AS MATERIALIZED (
    SELECT c.id, c.event_id
    FROM ready r
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id
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
    SELECT p.id, e.id IS NOT NULL AS sendable, e.payload::text AS payload, e.created_at AS event_created_at
    FROM picked p
    LEFT JOIN postbox.events e ON e.id = p.event_id
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
          c.payload, c.event_created_at,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
          w.headers, w.max_retries, w.retry_delay_seconds, w.active, w.template
