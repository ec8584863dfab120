-- delivery_get: one delivery of one owner's webhook ($1 delivery, $2 webhook,
-- $3 owner). Primary-key lookups; no lock.
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, d.response_body, d.error_message, d.created_at, d.updated_at, d.completed_at, d.batch_id,
       d.ordering_key
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.id = $1 AND d.webhook_id = $2 AND w.owner_id = $3
