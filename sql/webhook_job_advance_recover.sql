-- webhook_job_advance_recover: one batch of a recover job ($1 job, $2 batch
-- size, $3 now): requeues the job's webhook's dead letters ('failed') whose
-- event was created in [since, until) and matches the job's types, as
-- 'pending', due now; attempts and their history are kept (the attempt
-- counter goes on counting). Walks the webhook's dead letters in
-- (created_at, id) order from the job's cursor through
-- deliveries_failed_history_idx (V4), at most $2 rows per call, and moves
-- the cursor; a short batch finishes the job. So one call is bounded by $2
-- whatever the range, and claims are never blocked (no other row is locked
-- than the ones requeued).
-- Locks the job row (SKIP LOCKED: a job another caller advances is left to
-- it) and the requeued deliveries. Answers (done, finished) when it ran.
WITH job AS MATERIALIZED (
    SELECT j.id, j.webhook_id, j.since, j.until, j.event_types, j.cursor_at, j.cursor_id
    FROM postbox.webhook_jobs j
    WHERE j.id = $1 AND j.kind = 'recover' AND j.finished_at IS NULL
    FOR UPDATE SKIP LOCKED
), scanned AS MATERIALIZED (
    -- A delivery is created at or after its event: its created_at starts
    -- the walk at since.
    SELECT d.id, d.created_at, d.event_id, d.event_type
    FROM job j
    CROSS JOIN LATERAL (
        SELECT d.id, d.created_at, d.event_id, d.event_type
        FROM postbox.deliveries d
        WHERE d.webhook_id = j.webhook_id
          AND d.status = 'failed'
          AND j.since < j.until  -- an empty range finishes at once
          AND d.created_at >= greatest(j.cursor_at, j.since)
          AND (d.created_at, d.id) > (j.cursor_at, j.cursor_id)
        ORDER BY d.created_at, d.id
        LIMIT $2
    ) d
), picked AS MATERIALIZED (
    SELECT s.id
    FROM scanned s
    CROSS JOIN job j
    JOIN postbox.events e ON e.id = s.event_id
    WHERE e.created_at >= j.since AND e.created_at < j.until
      AND (j.event_types IS NULL
           OR s.event_type = ANY (j.event_types)
           OR split_part(s.event_type, '.', 1) || '.*' = ANY (j.event_types)
           OR '*' = ANY (j.event_types))
), requeued AS (
    UPDATE postbox.deliveries d
    SET -- Ordered delivery (V12): a keyed delivery goes back to its key's
        -- line as 'held', in commit order, and the line is queued for the
        -- dispatcher's promotion pass (lines, below).
        status = postbox.requeued_status(d.ordering_key),
        ordering_seq = postbox.requeued_seq(d.ordering_key, d.event_id, d.ordering_seq),
        next_attempt_at = $3,
        lease_expires_at = NULL,
        completed_at = NULL,
        updated_at = $3
    WHERE d.id = ANY (ARRAY(SELECT p.id FROM picked p))
      AND d.status = 'failed'
    RETURNING d.id, d.webhook_id, d.ordering_key
), lines AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT r.webhook_id, r.ordering_key FROM requeued r
    WHERE r.ordering_key IS NOT NULL
), last AS (
    SELECT s.created_at, s.id FROM scanned s ORDER BY s.created_at DESC, s.id DESC LIMIT 1
)
UPDATE postbox.webhook_jobs j
SET cursor_at = coalesce((SELECT l.created_at FROM last l), j.cursor_at),
    cursor_id = coalesce((SELECT l.id FROM last l), j.cursor_id),
    done = j.done + (SELECT count(*) FROM requeued),
    finished_at = CASE WHEN (SELECT count(*) FROM scanned) < $2 THEN $3::timestamptz END
FROM job
WHERE j.id = job.id
RETURNING j.done, j.finished_at IS NOT NULL AS finished
