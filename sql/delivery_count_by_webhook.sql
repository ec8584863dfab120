-- delivery_count_by_webhook: how many deliveries a list would page through
-- ($1 webhook, $2 owner, $3 status or NULL). Exact, from the counters
-- (delivery_counts by primary key, the pending delivery_count_deltas through
-- delivery_count_deltas_webhook_idx): the cost does not grow with the
-- history. No lock.
SELECT coalesce(sum(u.n), 0)::bigint AS total
FROM postbox.webhooks w
CROSS JOIN LATERAL (
    SELECT k.status, k.n FROM postbox.delivery_counts k WHERE k.webhook_id = w.id
    UNION ALL
    SELECT x.status, x.n FROM postbox.delivery_count_deltas x WHERE x.webhook_id = w.id
) u
WHERE w.id = $1 AND w.owner_id = $2
  AND ($3::postbox.delivery_status IS NULL OR u.status = $3)
