-- event_fanout_many: turns up to $1 committed events into deliveries, one per
-- matching active webhook of the event's owner (exact type, 'group.*' or '*'),
-- and claims up to $3 of the new deliveries at once: they are inserted as
-- 'sending', attempt 1, under a lease of $5 seconds, and returned with all a
-- request needs. The others (over $3; over a webhook's room: $7[i] for the
-- webhook $4[i] that already has requests in flight in this dispatcher, $6
-- for any other; or while the queue is paused) are inserted as 'pending' for
-- delivery_claim. $2 = now.
--
-- Always returns at least one row: the batch summary (events, deliveries,
-- queued, next_due, barrier_clear) with the claimed delivery's columns, which
-- are NULL when nothing was claimed.
-- - next_due: the earliest due time of queued work, as of this statement
--   (none while the queue is paused).
-- - barrier_clear: no producer transaction that may have read
--   dispatcher_waiting = false is still open (each producer holds the shared
--   form of this advisory lock until it commits). Taken and released at once
--   (a session lock), so producers never wait on it.
--
-- Locks the batch's event rows (SKIP LOCKED: concurrent dispatchers take
-- disjoint batches), read through events_fanout_pending_idx, so the cost
-- follows the backlog, not the table; reaches them again by primary key
-- (= ANY of an array), a plan that does not depend on statistics. The unique
-- key (event_id, webhook_id) makes a repeated fan-out add nothing.
WITH batch AS MATERIALIZED (
    SELECT e.id
    FROM postbox.events e
    WHERE e.fanout_pending
    ORDER BY e.created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE postbox.events e
    SET fanout_pending = false
    WHERE e.id = ANY (ARRAY(SELECT id FROM batch))
    RETURNING e.id, e.event_type, e.owner_id, e.payload, e.created_at
), matched AS MATERIALIZED (
    SELECT m.id AS event_id, m.event_type, m.payload, m.created_at AS event_created_at,
           w.id AS webhook_id, w.url, w.secret,
           CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
           w.headers, w.max_retries, w.retry_delay_seconds,
           row_number() OVER (PARTITION BY w.id ORDER BY m.created_at, m.id) AS rank_in_webhook,
           row_number() OVER (ORDER BY m.created_at, m.id, w.id) AS rank_in_batch
    FROM marked m
    JOIN postbox.webhooks w
      ON w.owner_id = m.owner_id
     AND w.active
     AND w.event_types && ARRAY[m.event_type, split_part(m.event_type, '.', 1) || '.*', '*']
), busy AS MATERIALIZED (
    SELECT b.webhook_id, b.room
    FROM unnest($4::uuid[], $7::bigint[]) AS b(webhook_id, room)
), decided AS MATERIALIZED (
    SELECT mt.*, postbox.uuid_v7() AS id,
           (NOT (SELECT paused FROM postbox.queue_state)
            AND mt.rank_in_batch <= $3::bigint
            AND mt.rank_in_webhook <= coalesce(b.room, $6::bigint)) AS claim
    FROM matched mt
    LEFT JOIN busy b ON b.webhook_id = mt.webhook_id
), inserted AS (
    INSERT INTO postbox.deliveries (id, webhook_id, event_id, event_type, status, attempts,
                                    next_attempt_at, lease_expires_at, created_at, updated_at)
    SELECT d.id, d.webhook_id, d.event_id, d.event_type,
           CASE WHEN d.claim THEN 'sending'::postbox.delivery_status ELSE 'pending' END,
           CASE WHEN d.claim THEN 1 ELSE 0 END,
           $2,
           CASE WHEN d.claim THEN $2 + make_interval(secs => $5) END,
           $2, $2
    FROM decided d
    ON CONFLICT (event_id, webhook_id) DO NOTHING
    RETURNING id, webhook_id, event_id, status
)
SELECT (SELECT count(*) FROM marked) AS events,
       (SELECT count(*) FROM inserted) AS deliveries,
       (SELECT count(*) FROM inserted i
         WHERE i.status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM busy b WHERE b.webhook_id = i.webhook_id AND b.room <= 0)) AS queued,
       (SELECT min(q.next_attempt_at) FROM postbox.deliveries q
         WHERE q.status IN ('pending', 'retrying')
           AND NOT (SELECT paused FROM postbox.queue_state)) AS next_due,
       CASE WHEN pg_try_advisory_lock(7138400190000001) THEN pg_advisory_unlock(7138400190000001) ELSE false END AS barrier_clear,
       c.*
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT i.id, i.webhook_id, i.event_id, d.event_type, d.payload::text AS payload, d.event_created_at,
           d.url, d.secret, d.previous_secret, d.headers, d.max_retries, d.retry_delay_seconds
    FROM inserted i
    JOIN decided d ON d.id = i.id
    WHERE i.status = 'sending'
) AS c ON true
