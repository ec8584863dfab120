-- webhook_job_insert: records a recover or replay job ($3 'recover' or
-- 'replay') for one owner's webhook ($1 id, $2 owner) over the events
-- created in [$4, $5), of the types $6 (NULL: all; 'group.*' and '*' match
-- as subscriptions do). Answers the job's id; no row when the owner has no
-- such webhook. The job is advanced in bounded batches by
-- webhook_job_advance_recover / _replay. Inserts one row.
INSERT INTO postbox.webhook_jobs (webhook_id, kind, since, until, event_types)
SELECT w.id, $3, $4, $5, $6
FROM postbox.webhooks w
WHERE w.id = $1 AND w.owner_id = $2
RETURNING id
