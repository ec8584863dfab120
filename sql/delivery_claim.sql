-- delivery_claim: claims up to $1 due deliveries and commits them as 'sending'
-- before any request is made. $2 = now, $4 = lease in seconds. Per webhook
-- (fairness across endpoints, the in-flight cap): at most $6[i] rows for the
-- webhook $3[i], which already has requests in flight in this dispatcher
-- (none when $6[i] <= 0), and at most $5 for any other.
-- The attempt counter is incremented here: it is the claim's fencing token.
--
-- Locks a window of at most 4 x $1 due rows (SKIP LOCKED, so dispatchers take
-- disjoint windows), read in due order through deliveries_due_idx: the scan
-- touches due rows only, whatever the table holds. Rows of the window that
-- are not picked are unlocked at commit, a few milliseconds later. The final
-- update reaches rows by primary key (= ANY of an array), a plan that does
-- not depend on statistics. Claims nothing while the queue is paused.
WITH window_rows AS MATERIALIZED (
    SELECT d.id, d.webhook_id, d.next_attempt_at
    FROM postbox.deliveries d
    WHERE d.status IN ('pending', 'retrying')
      AND d.next_attempt_at <= $2
      AND d.webhook_id <> ALL (ARRAY(SELECT b.webhook_id FROM unnest($3::uuid[], $6::bigint[]) AS b(webhook_id, room) WHERE b.room <= 0))
      AND NOT (SELECT paused FROM postbox.queue_state)
    ORDER BY d.next_attempt_at
    LIMIT 4 * $1::bigint
    FOR UPDATE SKIP LOCKED
), picked AS MATERIALIZED (
    SELECT r.id
    FROM (
        SELECT w.id, w.next_attempt_at, coalesce(b.room, $5::bigint) AS room,
               row_number() OVER (PARTITION BY w.webhook_id ORDER BY w.next_attempt_at) AS rank_in_webhook
        FROM window_rows w
        LEFT JOIN unnest($3::uuid[], $6::bigint[]) AS b(webhook_id, room) ON b.webhook_id = w.webhook_id
    ) r
    WHERE r.rank_in_webhook <= r.room
    ORDER BY r.next_attempt_at
    LIMIT $1::bigint
)
UPDATE postbox.deliveries d
SET status = 'sending',
    attempts = d.attempts + 1,
    lease_expires_at = $2 + make_interval(secs => $4),
    updated_at = $2
FROM postbox.webhooks w, postbox.events e
WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
  AND w.id = d.webhook_id
  AND e.id = d.event_id
RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts,
          e.payload::text AS payload, e.created_at AS event_created_at,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
          w.headers, w.max_retries, w.retry_delay_seconds, w.active
