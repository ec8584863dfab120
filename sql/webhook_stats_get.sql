-- webhook_stats_get: one owner's webhook's totals from the view
-- postbox.webhook_stats, plus the mean attempt duration ($1 id, $2 owner).
-- The view's grouping key is pushed down, so this reads the webhook's
-- deliveries through deliveries_webhook_idx; no lock.
SELECT s.total, s.success, s.failed, s.pending, s.retrying,
       s.success_rate::float8 AS success_rate, s.last_delivery_at,
       (SELECT avg(a.duration_ms)::float8
        FROM postbox.delivery_attempts a
        JOIN postbox.deliveries d ON d.id = a.delivery_id
        WHERE d.webhook_id = $1) AS average_duration_ms
FROM postbox.webhook_stats s
JOIN postbox.webhooks w ON w.id = s.webhook_id
WHERE s.webhook_id = $1 AND w.owner_id = $2
