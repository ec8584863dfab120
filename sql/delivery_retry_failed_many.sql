-- delivery_retry_failed_many: requeues up to $2 failed deliveries (all
-- owners: the admin route), or only those of webhook $1 when it is not NULL:
-- status pending, due now, attempts kept. The caller repeats it until a short
-- batch, so a requeue of millions of dead letters never holds them all
-- locked in one transaction. Reads failed rows through
-- deliveries_failed_idx (V2); locks only the rows of its batch (SKIP LOCKED).
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
      AND ($1::uuid IS NULL OR f.webhook_id = $1)
    ORDER BY f.completed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
))
