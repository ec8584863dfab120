-- webhook_list: one page of an owner's webhooks, newest first ($1 owner,
-- $2 limit, $3 offset). Reads webhooks_owner_idx (owner_id, created_at); no lock.
SELECT id, name, description, url, event_types, headers, max_retries, retry_delay_seconds,
       active, verified, disabled_at, disabled_reason, created_at, updated_at,
       filter, template, batch
FROM postbox.webhooks
WHERE owner_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2 OFFSET $3
