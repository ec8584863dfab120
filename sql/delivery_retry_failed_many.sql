-- delivery_retry_failed_many: requeues up to $1 failed deliveries of all
-- owners (the admin route): status pending, due now, attempts kept. The
-- caller repeats it until a short batch, so a requeue of millions of dead
-- letters never holds them all locked in one transaction. Reads failed rows
-- through deliveries_failed_idx (V2), oldest first; locks only the rows of
-- its batch (SKIP LOCKED). One webhook's: delivery_retry_failed_by_webhook.
WITH requeued AS (
    UPDATE postbox.deliveries d
    -- Ordered delivery (V12): a keyed delivery goes back to its key's line
    -- as 'held', in commit order (its event's ordering_seq), and the line
    -- is queued for the dispatcher's promotion pass (below).
    SET status = postbox.requeued_status(d.ordering_key),
        ordering_seq = postbox.requeued_seq(d.ordering_key, d.event_id, d.ordering_seq),
        next_attempt_at = now(),
        lease_expires_at = NULL,
        completed_at = NULL,
        updated_at = now()
    WHERE d.id = ANY (ARRAY(
        SELECT f.id
        FROM postbox.deliveries f
        WHERE f.status = 'failed'
        ORDER BY f.completed_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING d.webhook_id, d.ordering_key
), lines AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT r.webhook_id, r.ordering_key FROM requeued r
    WHERE r.ordering_key IS NOT NULL
)
SELECT count(*) AS requeued FROM requeued
