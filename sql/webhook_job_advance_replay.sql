-- webhook_job_advance_replay: one batch of a replay job ($1 job, $2 batch
-- size, $3 now): every event of the webhook's owner created in
-- [since, until) that the webhook's subscription (its event_types now) and
-- the job's types match is sent again, whatever its earlier outcome: its
-- delivery row (one per event and webhook) goes back to 'pending', due now,
-- keeping its attempts and their history; an event the webhook never had a
-- delivery for (a backfill) gets a new one. A delivery in flight is left
-- alone. webhook.test events are not replayed, nor events still waiting for
-- their fan-out (it delivers them).
-- Walks postbox.events in (created_at, id) order from the job's cursor
-- through events_created_idx, at most $2 events per call whoever their
-- owner, and moves the cursor; a short batch finishes the job. One call is
-- bounded by $2, not by the range.
-- Locks the job row (SKIP LOCKED) and the deliveries written. Answers
-- (done, finished) when it ran.
WITH job AS MATERIALIZED (
    SELECT j.id, j.webhook_id, j.since, j.until, j.event_types, j.cursor_at, j.cursor_id
    FROM postbox.webhook_jobs j
    WHERE j.id = $1 AND j.kind = 'replay' AND j.finished_at IS NULL
    FOR UPDATE SKIP LOCKED
), scanned AS MATERIALIZED (
    SELECT e.id, e.created_at, e.event_type, e.owner_id, e.fanout_pending, e.ordering_key, e.ordering_seq
    FROM job j
    CROSS JOIN LATERAL (
        SELECT e.id, e.created_at, e.event_type, e.owner_id, e.fanout_pending, e.ordering_key, e.ordering_seq
        FROM postbox.events e
        WHERE e.created_at >= greatest(j.cursor_at, j.since)
          AND e.created_at < j.until
          AND (e.created_at, e.id) > (j.cursor_at, j.cursor_id)
        ORDER BY e.created_at, e.id
        LIMIT $2
    ) e
), picked AS MATERIALIZED (
    SELECT s.id, s.event_type, s.ordering_key, s.ordering_seq, w.id AS webhook_id
    FROM scanned s
    CROSS JOIN job j
    JOIN postbox.webhooks w ON w.id = j.webhook_id
    WHERE s.owner_id = w.owner_id
      AND NOT s.fanout_pending
      AND s.event_type <> 'webhook.test'
      AND w.event_types && ARRAY[s.event_type, split_part(s.event_type, '.', 1) || '.*', '*']
      AND (j.event_types IS NULL
           OR s.event_type = ANY (j.event_types)
           OR split_part(s.event_type, '.', 1) || '.*' = ANY (j.event_types)
           OR '*' = ANY (j.event_types))
), written AS (
    -- Ordered delivery (V12): a keyed event's delivery goes to its key's
    -- line as 'held', in commit order, and the line is queued for the
    -- dispatcher's promotion pass (lines, below).
    INSERT INTO postbox.deliveries AS d (id, webhook_id, event_id, event_type, status, attempts,
                                         next_attempt_at, created_at, updated_at, ordering_key, ordering_seq)
    SELECT postbox.uuid_v7(), p.webhook_id, p.id, p.event_type,
           postbox.requeued_status(p.ordering_key),
           0, $3, $3, $3, p.ordering_key, p.ordering_seq
    FROM picked p
    ON CONFLICT (event_id, webhook_id) DO UPDATE
    SET status = excluded.status,
        ordering_seq = excluded.ordering_seq,
        next_attempt_at = $3,
        lease_expires_at = NULL,
        completed_at = NULL,
        updated_at = $3
    -- In flight, or already waiting in its key's line: left alone.
    WHERE d.status NOT IN ('sending', 'held')
    RETURNING d.id, d.webhook_id, d.ordering_key
), lines AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT r.webhook_id, r.ordering_key FROM written r
    WHERE r.ordering_key IS NOT NULL
), last AS (
    SELECT s.created_at, s.id FROM scanned s ORDER BY s.created_at DESC, s.id DESC LIMIT 1
)
UPDATE postbox.webhook_jobs j
SET cursor_at = coalesce((SELECT l.created_at FROM last l), j.cursor_at),
    cursor_id = coalesce((SELECT l.id FROM last l), j.cursor_id),
    done = j.done + (SELECT count(*) FROM written),
    finished_at = CASE WHEN (SELECT count(*) FROM scanned) < $2 THEN $3::timestamptz END
FROM job
WHERE j.id = job.id
RETURNING j.done, j.finished_at IS NOT NULL AS finished
