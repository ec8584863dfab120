-- delivery_get_many: the owner's deliveries among the ids $1 ($2 owner),
-- without response bodies: the live tail's re-read of the rows it shows.
-- Primary-key lookups; no lock.
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, NULL::text AS response_body, d.error_message, d.created_at,
       d.updated_at, d.completed_at, d.batch_id, d.ordering_key
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.id = ANY ($1) AND w.owner_id = $2
