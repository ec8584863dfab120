-- delivery_list_by_webhook: one page of a webhook's deliveries, newest first
-- ($1 webhook, $2 owner, $3 status or NULL for all, $4 limit, $5 offset).
-- Reads deliveries_webhook_idx (webhook_id, created_at DESC); no lock.
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, d.response_body, d.error_message, d.created_at, d.updated_at, d.completed_at
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.webhook_id = $1 AND w.owner_id = $2
  AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
ORDER BY d.created_at DESC, d.id DESC
LIMIT $4 OFFSET $5
