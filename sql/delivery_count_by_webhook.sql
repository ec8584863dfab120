-- delivery_count_by_webhook: how many deliveries a list would page through
-- ($1 webhook, $2 owner, $3 status or NULL). Reads deliveries_webhook_idx.
SELECT count(*) AS total
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.webhook_id = $1 AND w.owner_id = $2
  AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
