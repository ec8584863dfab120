-- delivery_delete_success_many: deletes up to $3 successful deliveries
-- completed before $2 (now - POSTBOX_RETENTION_SUCCESS) and at or after $1 (the
-- previous batch's newest completed_at, so a run never rescans what it deleted);
-- their attempts go with them (ON DELETE CASCADE). Before the rows go, each
-- webhook's newest deleted success is kept in webhooks.last_success_at for
-- auto-disable. Reads deliveries_finished_idx in completed_at order; locks only
-- the rows it deletes, SKIP LOCKED so it never waits on (or blocks) the queue.
-- Returns the rows deleted and the newest completed_at among them.
WITH doomed AS (
    SELECT d.id
    FROM postbox.deliveries d
    WHERE d.status IN ('success', 'failed')
      AND d.status = 'success'
      AND d.completed_at >= $1
      AND d.completed_at < $2
    ORDER BY d.completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.deliveries d
    USING doomed
    WHERE d.id = doomed.id
    RETURNING d.webhook_id, d.completed_at
), remembered AS (
    UPDATE postbox.webhooks w
    SET last_success_at = g.latest
    FROM (SELECT webhook_id, max(completed_at) AS latest FROM gone GROUP BY webhook_id) g
    WHERE w.id = g.webhook_id
      AND (w.last_success_at IS NULL OR w.last_success_at < g.latest)
)
SELECT count(*) AS deleted, max(completed_at) AS newest
FROM gone
