-- delivery_claim_batch_many: claims up to $1 batches of batched webhooks
-- (postbox.webhooks.batch, V9), at most as many per webhook as it has room
-- for requests ($6[i] for the webhook $3[i] that already has requests in
-- flight in this dispatcher, $5 for any other), and commits their rows as 'sending'
-- under a lease of $4 seconds before any request is made. $2 = now. Returns
-- one row per delivery, with its batch_id: the caller groups them.
--
-- Which batch, per webhook:
-- 1. a failed batch whose retry is due: its 'retrying' rows with that
--    batch_id, resent as a whole under the same id (deliveries_batch_idx);
-- 2. else new batches (a new id each) of up to maxEvents of its other queued
--    rows (pending, or retrying outside any batch), earliest due first: each
--    full batch, and a last partial one once its earliest row is due
--    (maxWaitMs after its fan-out; a requeue makes it due at once).
-- The fan-out queues a batched webhook's rows as 'pending', due maxWaitMs
-- later, and sql/delivery_claim.sql leaves them alone.
--
-- Reads webhooks_batched_idx (the batched webhooks only: usually none, so
-- the statement costs one index probe) and deliveries_webhook_due_idx (V5):
-- per batched webhook, the head of its queue and at most maxEvents x room
-- entries.
-- Locks the rows it looks at (FOR UPDATE SKIP LOCKED): those it takes, and
-- those of a last partial batch that is not due yet, until it commits.
-- At most $1 batches in all. Claims nothing while
-- the queue is paused. A delivery whose event row is gone becomes a dead
-- letter with the reason, as in delivery_claim (returned with a NULL payload).
WITH batched AS MATERIALIZED (
    SELECT w.id AS webhook_id, w.batch_max_events AS max_events,
           least(coalesce((SELECT b.room
                           FROM unnest($3::uuid[], $6::bigint[]) AS b(webhook_id, room)
                           WHERE b.webhook_id = w.id
                           LIMIT 1), $5::bigint), $1::bigint) AS room
    FROM postbox.webhooks w
    WHERE w.batch IS NOT NULL
      AND w.batch_max_events IS NOT NULL
      AND NOT (SELECT paused FROM postbox.queue_state)
), ready AS MATERIALIZED (
    SELECT b.webhook_id, b.max_events, b.room, r.batch_id AS retry_batch,
           coalesce(r.due, n.due) AS due
    FROM batched b
    LEFT JOIN LATERAL (
        -- A failed batch due for its retry.
        SELECT d.batch_id, d.next_attempt_at AS due
        FROM postbox.deliveries d
        WHERE d.webhook_id = b.webhook_id
          AND d.status IN ('pending', 'retrying')
          AND d.next_attempt_at <= $2
          AND d.status = 'retrying'
          AND d.batch_id IS NOT NULL
        ORDER BY d.next_attempt_at
        LIMIT 1
    ) r ON true
    CROSS JOIN LATERAL (
        -- The head of the queue, and whether maxEvents rows are queued.
        SELECT min(q.next_attempt_at) AS due, count(*) AS queued
        FROM (SELECT d.next_attempt_at
              FROM postbox.deliveries d
              WHERE d.webhook_id = b.webhook_id
                AND d.status IN ('pending', 'retrying')
              ORDER BY d.next_attempt_at
              LIMIT b.max_events) q
    ) n
    WHERE b.room > 0
      AND (r.batch_id IS NOT NULL OR n.due <= $2 OR n.queued >= b.max_events)
    ORDER BY coalesce(r.due, n.due)
    LIMIT $1::bigint
), retried AS MATERIALIZED (
    SELECT r.webhook_id, r.retry_batch AS batch_id, c.id, c.event_id, c.ordering_key
    FROM ready r
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.ordering_key
        FROM postbox.deliveries d
        WHERE d.batch_id = r.retry_batch
          AND d.webhook_id = r.webhook_id
          AND d.status = 'retrying'
          AND d.next_attempt_at <= $2
        ORDER BY d.next_attempt_at
        LIMIT r.max_events
        FOR UPDATE OF d SKIP LOCKED
    ) c
    WHERE r.retry_batch IS NOT NULL
), fresh AS MATERIALIZED (
    -- Up to `room` new batches per webhook: its queued rows in due order,
    -- cut into chunks of maxEvents.
    SELECT r.webhook_id, r.max_events, c.id, c.event_id, c.ordering_key, c.next_attempt_at,
           (row_number() OVER (PARTITION BY r.webhook_id ORDER BY c.next_attempt_at, c.id) - 1)
               / r.max_events AS chunk
    FROM ready r
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.ordering_key, d.next_attempt_at
        FROM postbox.deliveries d
        WHERE d.webhook_id = r.webhook_id
          AND d.status IN ('pending', 'retrying')
          AND (d.status = 'pending' OR d.batch_id IS NULL)
        ORDER BY d.next_attempt_at
        LIMIT r.max_events * r.room
        FOR UPDATE OF d SKIP LOCKED
    ) c
    WHERE r.retry_batch IS NULL
), chunks AS MATERIALIZED (
    -- The chunks that go now: full, or holding a due row; at most $1
    -- batches in all (a batch is one claim: one request, one permit).
    SELECT f.webhook_id, f.chunk, postbox.uuid_v7() AS batch_id
    FROM fresh f
    GROUP BY f.webhook_id, f.chunk, f.max_events
    HAVING count(*) >= f.max_events OR min(f.next_attempt_at) <= $2
    ORDER BY min(f.next_attempt_at), f.webhook_id, f.chunk
    LIMIT greatest($1::bigint - (SELECT count(DISTINCT rt.batch_id) FROM retried rt), 0)
), claimed AS MATERIALIZED (
    SELECT p.id, p.batch_id, p.webhook_id, p.ordering_key, e.id IS NOT NULL AS sendable, e.payload::text AS payload,
           e.created_at AS event_created_at
    FROM (SELECT rt.id, rt.event_id, rt.batch_id, rt.webhook_id, rt.ordering_key FROM retried rt
          UNION ALL
          SELECT f.id, f.event_id, ch.batch_id, f.webhook_id, f.ordering_key
          FROM fresh f
          JOIN chunks ch ON ch.webhook_id = f.webhook_id AND ch.chunk = f.chunk) p
    LEFT JOIN postbox.events e ON e.id = p.event_id
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
    -- The lease starts when the row is written (see delivery_claim).
    lease_expires_at = CASE WHEN c.sendable THEN $2 + (clock_timestamp() - statement_timestamp()) + make_interval(secs => $4) END,
    error_message = CASE WHEN c.sendable THEN d.error_message
                         ELSE 'event ' || d.event_id || ' no longer exists: not sent' END,
    completed_at = CASE WHEN c.sendable THEN NULL ELSE $2 END,
    batch_id = c.batch_id,
    updated_at = $2
FROM claimed c, postbox.webhooks w
WHERE d.id = c.id
  AND w.id = d.webhook_id
RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.lease_expires_at, d.batch_id,
          c.payload, c.event_created_at, d.ordering_key, w.ordering_policy,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
          w.headers, w.max_retries, w.retry_delay_seconds, w.active, w.template, w.retry_schedule,
          w.max_in_flight IS NOT NULL AS in_flight_limited
