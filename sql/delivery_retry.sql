-- delivery_retry: puts one delivery of one owner's webhook back in the queue,
-- due now ($1 delivery, $2 webhook, $3 owner). The attempt counter keeps
-- counting up. A delivery being sent ('sending') is left alone. Answers one
-- row when the delivery exists: its status before, and whether it was
-- requeued. Locks the delivery row (primary key).
WITH target AS (
    SELECT d.id, d.status
    FROM postbox.deliveries d
    JOIN postbox.webhooks w ON w.id = d.webhook_id
    WHERE d.id = $1 AND d.webhook_id = $2 AND w.owner_id = $3
    FOR UPDATE OF d
), requeued AS (
    UPDATE postbox.deliveries d
    SET status = 'pending',
        next_attempt_at = now(),
        lease_expires_at = NULL,
        completed_at = NULL,
        updated_at = now()
    FROM target t
    WHERE d.id = t.id AND t.status <> 'sending' AND d.status <> 'sending'
    RETURNING d.id
)
SELECT t.status AS previous_status, EXISTS (SELECT 1 FROM requeued) AS requeued
FROM target t
