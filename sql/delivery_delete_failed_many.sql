-- delivery_delete_failed_many: deletes up to $3 failed deliveries (dead
-- letters) completed before $2 (now - POSTBOX_RETENTION_FAILED) and at or after
-- $1 (the previous batch's newest completed_at); their attempts go with them
-- (ON DELETE CASCADE), and so does each event left without any delivery
-- (counted in retention_state.events_released, reported by the next event
-- retention batch). Reads deliveries_failed_idx (V2) in completed_at order,
-- and the batch's events by primary key with a probe of
-- deliveries_event_webhook_key each; locks only the rows it deletes, SKIP
-- LOCKED (a concurrent requeue wins).
-- $4: events created at or after it are kept (POSTBOX_RETENTION_EVENTS:
-- kept for replays even without a delivery).
-- Returns the rows deleted and the newest completed_at among them.
WITH doomed AS MATERIALIZED (
    SELECT d.id, d.event_id
    FROM postbox.deliveries d
    WHERE d.status = 'failed'
      AND d.completed_at >= $1
      AND d.completed_at < $2
    ORDER BY d.completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.deliveries d
    WHERE d.id = ANY (ARRAY(SELECT id FROM doomed))
    RETURNING d.completed_at
), events_gone AS (
    -- This statement's snapshot still shows the deliveries it deletes: they
    -- are excluded by id. Nothing creates deliveries for a fanned-out event.
    DELETE FROM postbox.events e
    WHERE e.id = ANY (ARRAY(SELECT event_id FROM doomed))
      AND NOT e.fanout_pending
      AND e.created_at < least($2, $4::timestamptz)
      -- A probe per event (LIMIT 1 keeps it one: no hash of the table).
      AND (SELECT 1 FROM postbox.deliveries x
           WHERE x.event_id = e.id
             AND x.id NOT IN (SELECT id FROM doomed)
           LIMIT 1) IS NULL
    RETURNING 1
), released AS (
    UPDATE postbox.retention_state
    SET events_released = events_released + (SELECT count(*) FROM events_gone)
)
SELECT count(*) AS deleted, max(completed_at) AS newest
FROM gone
