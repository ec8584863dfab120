-- notification_delete_processed_many: deletes up to $2 notifications their
-- owner processed before $1 (now - POSTBOX_RETENTION_FAILED), and up to $2
-- recover/replay jobs finished before $1. Reads notifications_processed_idx
-- and webhook_jobs_finished_idx (V10); locks only the rows it deletes (SKIP
-- LOCKED). Answers how many rows of each went; the caller repeats it until
-- both are below $2. Unprocessed notifications are never deleted: they are
-- the owner's until consumed.
WITH doomed AS (
    SELECT n.id
    FROM postbox.notifications n
    WHERE n.processed_at IS NOT NULL AND n.processed_at < $1
    ORDER BY n.processed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM postbox.notifications n
    WHERE n.id = ANY (ARRAY(SELECT d.id FROM doomed d))
    RETURNING 1
), jobs_doomed AS (
    SELECT j.id
    FROM postbox.webhook_jobs j
    WHERE j.finished_at IS NOT NULL AND j.finished_at < $1
    ORDER BY j.finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), jobs_gone AS (
    DELETE FROM postbox.webhook_jobs j
    WHERE j.id = ANY (ARRAY(SELECT d.id FROM jobs_doomed d))
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS notifications, (SELECT count(*) FROM jobs_gone) AS jobs
