-- webhook_job_list_unfinished: up to $1 recover/replay jobs not finished,
-- oldest first (id, kind), for the maintenance run that advances them
-- (a job whose API task ended with its process). Reads
-- webhook_jobs_unfinished_idx; no lock.
SELECT j.id, j.kind
FROM postbox.webhook_jobs j
WHERE j.finished_at IS NULL
ORDER BY j.created_at
LIMIT $1
