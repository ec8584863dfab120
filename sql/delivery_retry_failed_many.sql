-- delivery_retry_failed_many: requeues up to $1 failed deliveries of all
-- owners (the admin route): status pending, due now, attempts kept. The
-- caller repeats it until a short batch, so a requeue of millions of dead
-- letters never holds them all locked in one transaction. Reads failed rows
-- through deliveries_failed_idx (V2), oldest first; locks only the rows of
-- its batch (SKIP LOCKED). One webhook's: delivery_retry_failed_by_webhook.
UPDATE postbox.deliveries d
SET status = 'pending',
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
