-- webhook_health_many: health at a glance of the owner's ($2) webhooks
-- among the ids $1: the counts of the view postbox.webhook_stats (from the
-- counters, never the deliveries) and the rolled-up outcome history of
-- postbox.webhook_activity. Primary keys and the counters' keys; no lock.
SELECT w.id AS webhook_id, s.total, s.success, s.failed, s.pending, s.retrying,
       s.success_rate::float8 AS success_rate, s.last_delivery_at,
       a.last_success_at, a.last_failure_at, a.failing_since,
       coalesce(a.consecutive_failures, 0) AS consecutive_failures
FROM postbox.webhooks w
JOIN postbox.webhook_stats s ON s.webhook_id = w.id
LEFT JOIN postbox.webhook_activity a ON a.webhook_id = w.id
WHERE w.id = ANY ($1) AND w.owner_id = $2
