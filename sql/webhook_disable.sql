-- webhook_disable: turns a webhook off and records why and when
-- ($1 id, $2 reason, $3 now). Primary-key update.
UPDATE postbox.webhooks
SET active = false, disabled_at = $3, disabled_reason = $2, updated_at = $3
WHERE id = $1 AND active
