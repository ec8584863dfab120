-- event_delete_unneeded_many: deletes up to $3 events that no delivery
-- needs any more: fanned out (fanout_pending = false), without any delivery
-- left, created before $2 (now - POSTBOX_RETENTION_SUCCESS). $1 is the
-- previous batch's newest created_at (the unix epoch for a run's first).
-- Returns the rows deleted (plus the events the delivery retention deleted
-- with their last delivery since the previous report,
-- retention_state.events_released) and the newest created_at.
--
-- Each event is examined when it crosses the cutoff, once: the scan starts
-- at retention_state.events_checked_until (moved to $2 when a batch comes
-- out short), so the events kept by a dead letter for days are not walked
-- again on every run; the delivery retention deletes those with their last
-- delivery. The events whose deliveries went another way (a webhook DELETE,
-- a manual purge) or that were skipped while locked or not yet fanned out are
-- found by a slow sweep: each statement re-examines up to $3 older events
-- after retention_state.events_swept_at/_id, and starts over at the oldest
-- after the last. Reads events_created_idx in order and probes
-- deliveries_event_webhook_key per event (a LIMIT 1 subquery: one probe, never
-- a hash of the whole table); reaches rows to delete by primary key; locks only the rows it deletes
-- (SKIP LOCKED) and the retention_state row. Deliveries are created only by
-- fan-out, from events that are still fanout_pending and locked by it, or
-- together with a brand-new event (the API's test send), so the check
-- cannot race.
WITH st AS MATERIALIZED (
    SELECT s.events_checked_until AS checked_until, s.events_swept_at AS swept_at,
           s.events_swept_id AS swept_id, s.events_released AS released
    FROM postbox.retention_state s
    FOR UPDATE
), fresh AS MATERIALIZED (
    SELECT e.id, e.created_at
    FROM postbox.events e
    WHERE e.created_at >= greatest($1, (SELECT checked_until FROM st))
      AND e.created_at < $2
      AND NOT e.fanout_pending
      AND (SELECT 1 FROM postbox.deliveries d WHERE d.event_id = e.id LIMIT 1) IS NULL
    ORDER BY e.created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), swept AS MATERIALIZED (
    SELECT e.id, e.created_at,
           NOT e.fanout_pending
           AND (SELECT 1 FROM postbox.deliveries d WHERE d.event_id = e.id LIMIT 1) IS NULL AS unneeded
    FROM postbox.events e
    WHERE (e.created_at, e.id) > ((SELECT swept_at FROM st), (SELECT swept_id FROM st))
      AND e.created_at < least((SELECT checked_until FROM st), $2)
    ORDER BY e.created_at, e.id
    LIMIT $3
), sweep_end AS MATERIALIZED (
    SELECT s.created_at, s.id
    FROM swept s
    WHERE (SELECT count(*) FROM swept) = $3
    ORDER BY s.created_at DESC, s.id DESC
    LIMIT 1
), stale AS MATERIALIZED (
    SELECT e.id
    FROM postbox.events e
    WHERE e.id = ANY (ARRAY(SELECT s.id FROM swept s WHERE s.unneeded))
      AND e.id NOT IN (SELECT f.id FROM fresh f)
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.events e
    WHERE e.id = ANY (ARRAY(SELECT f.id FROM fresh f UNION ALL SELECT s.id FROM stale s))
    RETURNING e.id
), moved AS (
    UPDATE postbox.retention_state s
    SET events_checked_until = CASE WHEN (SELECT count(*) FROM fresh) < $3
                                    THEN greatest(s.events_checked_until, $2)
                                    ELSE s.events_checked_until END,
        -- A short sweep reached the end: the next one starts at the oldest.
        events_swept_at = coalesce((SELECT x.created_at FROM sweep_end x), '-infinity'),
        events_swept_id = coalesce((SELECT x.id FROM sweep_end x), '00000000-0000-0000-0000-000000000000'),
        events_released = 0
)
SELECT (SELECT count(*) FROM gone) + (SELECT released FROM st) AS deleted,
       (SELECT max(created_at) FROM fresh) AS newest
