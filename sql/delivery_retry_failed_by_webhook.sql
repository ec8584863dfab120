-- delivery_retry_failed_by_webhook: requeues up to $2 failed deliveries of
-- webhook $1: status pending, due now, attempts kept. The caller repeats it
-- until a short batch. Reads that webhook's dead letters only, through
-- deliveries_failed_history_idx (V4: webhook_id, created_at DESC, id DESC,
-- where failed), so its cost follows the webhook's dead letters, not every
-- owner's; locks only the rows of its batch (SKIP LOCKED).
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
        WHERE f.webhook_id = $1
          AND f.status = 'failed'
        ORDER BY f.created_at DESC, f.id DESC
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING d.webhook_id, d.ordering_key
), lines AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT r.webhook_id, r.ordering_key FROM requeued r
    WHERE r.ordering_key IS NOT NULL
)
SELECT count(*) AS requeued FROM requeued
