-- webhook_list_troubled: the operator view's webhooks in trouble, every
-- owner's: disabled ones, and those failing without a success since
-- (webhook_activity.failing_since), the longest-troubled first, at most $1.
-- Reads postbox.webhooks (one row per endpoint, not history) and
-- webhook_activity by primary key; no lock.
SELECT w.id, w.owner_id, w.name, w.url, w.disabled_at, w.disabled_reason,
       a.failing_since, coalesce(a.consecutive_failures, 0) AS consecutive_failures,
       a.last_failure_at
FROM postbox.webhooks w
LEFT JOIN postbox.webhook_activity a ON a.webhook_id = w.id
WHERE w.disabled_at IS NOT NULL OR a.failing_since IS NOT NULL
ORDER BY least(w.disabled_at, a.failing_since) NULLS LAST, w.id
LIMIT $1
