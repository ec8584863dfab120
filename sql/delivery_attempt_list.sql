-- delivery_attempt_list: the newest $4 attempts of one delivery of one
-- owner's webhook ($1 delivery, $2 webhook, $3 owner), newest first.
-- Primary keys (delivery_attempts (delivery_id, attempt), deliveries,
-- webhooks); no lock.
SELECT a.attempt, a.started_at, a.duration_ms, a.response_code, a.response_body, a.error_message
FROM postbox.delivery_attempts a
JOIN postbox.deliveries d ON d.id = a.delivery_id
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE a.delivery_id = $1 AND d.webhook_id = $2 AND w.owner_id = $3
ORDER BY a.attempt DESC
LIMIT $4
