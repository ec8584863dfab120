-- event_delete_unneeded_many: deletes up to $3 events that no delivery
-- needs any more: fanned out (fanout_pending = false), without any delivery
-- left, created before $2 (now - POSTBOX_RETENTION_SUCCESS) and at or after $1
-- (the previous batch's newest created_at). Reads events_created_idx in order
-- and probes deliveries_event_webhook_key per event; locks only the rows it
-- deletes, SKIP LOCKED. Deliveries are created only by fan-out, from events
-- that are still fanout_pending and locked by it, or together with a brand-new
-- event (the API's test send), so the check cannot race.
-- Returns the rows deleted and the newest created_at.
WITH doomed AS (
    SELECT e.id
    FROM postbox.events e
    WHERE e.created_at >= $1
      AND e.created_at < $2
      AND NOT e.fanout_pending
      AND NOT EXISTS (SELECT 1 FROM postbox.deliveries d WHERE d.event_id = e.id)
    ORDER BY e.created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.events e
    USING doomed
    WHERE e.id = doomed.id
    RETURNING e.created_at
)
SELECT count(*) AS deleted, max(created_at) AS newest
FROM gone
