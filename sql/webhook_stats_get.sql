-- webhook_stats_get: one owner's webhook's totals from the view
-- postbox.webhook_stats, plus the mean attempt duration ($1 id, $2 owner).
-- Counts are exact and read the counters (delivery_counts and the pending
-- delivery_count_deltas, by their keys), never the deliveries: the cost does
-- not grow with the history. The mean duration is over the attempts of the
-- webhook's 1,000 newest deliveries (deliveries_webhook_idx, then the
-- attempts' primary key); no lock.
SELECT s.total, s.success, s.failed, s.pending, s.retrying,
       s.success_rate::float8 AS success_rate, s.last_delivery_at,
       (SELECT avg(a.duration_ms)::float8
        FROM postbox.delivery_attempts a
        WHERE a.delivery_id = ANY (ARRAY(
            SELECT d.id FROM postbox.deliveries d
            WHERE d.webhook_id = $1
            ORDER BY d.created_at DESC, d.id DESC
            LIMIT 1000))) AS average_duration_ms
FROM postbox.webhook_stats s
JOIN postbox.webhooks w ON w.id = s.webhook_id
WHERE s.webhook_id = $1 AND w.owner_id = $2
