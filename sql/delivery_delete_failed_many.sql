-- delivery_delete_failed_many: deletes up to $3 failed deliveries (dead
-- letters) completed before $2 (now - POSTBOX_RETENTION_FAILED) and at or after
-- $1 (the previous batch's newest completed_at); their attempts go with them
-- (ON DELETE CASCADE). Reads deliveries_failed_idx (V2) in completed_at order;
-- locks only the rows it deletes, SKIP LOCKED (a concurrent requeue wins).
-- Returns the rows deleted and the newest completed_at among them.
WITH doomed AS (
    SELECT d.id
    FROM postbox.deliveries d
    WHERE d.status = 'failed'
      AND d.completed_at >= $1
      AND d.completed_at < $2
    ORDER BY d.completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.deliveries d
    USING doomed
    WHERE d.id = doomed.id
    RETURNING d.completed_at
)
SELECT count(*) AS deleted, max(completed_at) AS newest
FROM gone
