-- webhook_hourly_stats: one owner's webhook's ($1, $2) deliveries per hour
-- of creation and status since $3 (view postbox.delivery_hour_totals: the
-- counters, exact, never the deliveries), and the attempts' mean and
-- slowest duration per hour of start over its 1,000 newest deliveries
-- (deliveries_webhook_idx, then the attempts' primary key), for the
-- portal's charts. kind = 'count' rows carry status and n; kind =
-- 'latency' rows carry mean_ms and max_ms. No lock.
SELECT 'count' AS kind, t.hour, t.status::text AS status, t.n,
       NULL::float8 AS mean_ms, NULL::int AS max_ms
FROM postbox.delivery_hour_totals t
JOIN postbox.webhooks w ON w.id = t.webhook_id
WHERE t.webhook_id = $1 AND w.owner_id = $2 AND t.hour >= $3 AND t.n > 0
UNION ALL
SELECT 'latency', date_bin('1 hour', a.started_at, 'epoch'::timestamptz), NULL, count(*),
       avg(a.duration_ms)::float8, max(a.duration_ms)
FROM postbox.delivery_attempts a
WHERE a.started_at >= $3
  AND EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = $1 AND w.owner_id = $2)
  AND a.delivery_id = ANY (ARRAY(
      SELECT d.id FROM postbox.deliveries d
      WHERE d.webhook_id = $1
      ORDER BY d.created_at DESC, d.id DESC
      LIMIT 1000))
GROUP BY 2
ORDER BY 2
