-- webhook_get: one webhook of one owner ($1 id, $2 owner); another owner's id
-- finds nothing. Primary-key lookup, no lock.
SELECT id, name, description, url, event_types, headers, max_retries, retry_delay_seconds,
       active, verified, disabled_at, disabled_reason, created_at, updated_at,
       filter, template, batch
FROM postbox.webhooks
WHERE id = $1 AND owner_id = $2
