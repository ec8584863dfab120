-- delivery_delete_success_many: deletes up to $3 successful and cancelled
-- (superseded, V12: final and not dead letters) deliveries completed before $2 (now - POSTBOX_RETENTION_SUCCESS) and at or after $1 (the
-- previous batch's newest completed_at, so a run never rescans what it deleted);
-- their attempts go with them (ON DELETE CASCADE), and so does each event left
-- without any delivery (counted in retention_state.events_released, reported
-- by the next event retention batch). Before the rows go, each webhook's
-- newest deleted success (not a cancelled one) is kept in
-- webhooks.last_success_at.
-- Reads deliveries_finished_ok_idx (V12: successes and cancelled only, so
-- dead letters are never walked) in completed_at order, and the batch's events by primary key
-- with a probe of deliveries_event_webhook_key each; locks only the rows it
-- deletes, SKIP LOCKED so it never waits on (or blocks) the queue.
-- $4: events created at or after it are kept (POSTBOX_RETENTION_EVENTS:
-- kept for replays even without a delivery).
-- Returns the rows deleted and the newest completed_at among them.
WITH doomed AS MATERIALIZED (
    SELECT d.id, d.event_id
    FROM postbox.deliveries d
    WHERE d.status IN ('success', 'cancelled')
      AND d.completed_at >= $1
      AND d.completed_at < $2
    ORDER BY d.completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.deliveries d
    WHERE d.id = ANY (ARRAY(SELECT id FROM doomed))
    RETURNING d.webhook_id, d.completed_at, d.status
), remembered AS (
    UPDATE postbox.webhooks w
    SET last_success_at = g.latest
    FROM (SELECT webhook_id, max(completed_at) AS latest FROM gone
          WHERE status = 'success' GROUP BY webhook_id) g
    WHERE w.id = g.webhook_id
      AND (w.last_success_at IS NULL OR w.last_success_at < g.latest)
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
