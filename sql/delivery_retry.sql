-- delivery_retry: puts one delivery of one owner's webhook back in the queue,
-- due now ($1 delivery, $2 webhook, $3 owner). The attempt counter keeps
-- counting up. A delivery being sent ('sending') is left alone, and so is
-- one already waiting in its key's line ('held': answered as requeued, it is
-- queued). Answers one row when the delivery exists: its status before, and
-- whether it was requeued. Locks the delivery row (primary key).
WITH target AS (
    SELECT d.id, d.status
    FROM postbox.deliveries d
    JOIN postbox.webhooks w ON w.id = d.webhook_id
    WHERE d.id = $1 AND d.webhook_id = $2 AND w.owner_id = $3
    FOR UPDATE OF d
), requeued AS (
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
    FROM target t
    WHERE d.id = t.id AND t.status NOT IN ('sending', 'held') AND d.status NOT IN ('sending', 'held')
    RETURNING d.id, d.webhook_id, d.ordering_key
), lines AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT r.webhook_id, r.ordering_key FROM requeued r
    WHERE r.ordering_key IS NOT NULL
)
SELECT t.status AS previous_status, EXISTS (SELECT 1 FROM requeued) OR t.status = 'held' AS requeued
FROM target t
