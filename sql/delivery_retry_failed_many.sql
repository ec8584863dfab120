-- delivery_retry_failed_many: requeues every failed delivery (all owners; the
-- admin route), or only those of webhook $1 when it is not NULL: status
-- pending, due now, attempts kept. Reads failed rows through
-- deliveries_finished_idx (or deliveries_webhook_idx with $1); locks the rows
-- it changes.
UPDATE postbox.deliveries
SET status = 'pending',
    next_attempt_at = now(),
    lease_expires_at = NULL,
    completed_at = NULL,
    updated_at = now()
WHERE status = 'failed'
  AND ($1::uuid IS NULL OR webhook_id = $1)
