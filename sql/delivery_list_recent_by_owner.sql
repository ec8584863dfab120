-- delivery_list_recent_by_owner: the live tail's new rows: up to $3 of the
-- owner's ($1) deliveries created at or after $2, newest first, across its
-- webhooks. One seek per webhook on deliveries_webhook_idx (webhook_id,
-- created_at DESC, id DESC), each at most $3 entries; webhooks by
-- webhooks_owner_idx. No lock.
SELECT x.id, x.webhook_id, x.event_id, x.event_type, x.status, x.attempts, x.next_attempt_at,
       x.response_code, NULL::text AS response_body, x.error_message, x.created_at,
       x.updated_at, x.completed_at, x.batch_id, x.ordering_key
FROM postbox.webhooks w
CROSS JOIN LATERAL (
    SELECT d.* FROM postbox.deliveries d
    WHERE d.webhook_id = w.id AND d.created_at >= $2
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT $3
) x
WHERE w.owner_id = $1
ORDER BY x.created_at DESC, x.id DESC
LIMIT $3
