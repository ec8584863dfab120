-- delivery_count_by_webhook: how many deliveries a list would page through
-- ($1 webhook, $2 owner, $3 status or NULL). Exact, from the counters (view
-- postbox.delivery_totals: delivery_counts by primary key, the pending
-- delivery_count_deltas through delivery_count_deltas_webhook_idx): the cost
-- does not grow with the history. No lock.
SELECT coalesce(sum(t.n), 0)::bigint AS total
FROM postbox.webhooks w
JOIN postbox.delivery_totals t ON t.webhook_id = w.id
WHERE w.id = $1 AND w.owner_id = $2
  AND ($3::postbox.delivery_status IS NULL OR t.status = $3)
