-- event_fanout_many: turns up to $1 committed events into deliveries, one per
-- matching active webhook of the event's owner (exact type, 'group.*' or '*').
-- $2 = now. Locks the claimed event rows (SKIP LOCKED: concurrent dispatchers
-- take disjoint batches). Reads events through events_fanout_pending_idx, so
-- the cost follows the backlog, not the table; reaches them again by primary
-- key (= ANY of an array), a plan that does not depend on statistics. The
-- unique key (event_id, webhook_id) makes a repeated fan-out add nothing.
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
    RETURNING e.id, e.event_type, e.owner_id
), inserted AS (
    INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
    SELECT w.id, m.id, m.event_type, 'pending', $2, $2, $2
    FROM marked m
    JOIN postbox.webhooks w
      ON w.owner_id = m.owner_id
     AND w.active
     AND w.event_types && ARRAY[m.event_type, split_part(m.event_type, '.', 1) || '.*', '*']
    ON CONFLICT (event_id, webhook_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked) AS events,
       (SELECT count(*) FROM inserted) AS deliveries
