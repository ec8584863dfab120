-- delivery_list_by_webhook: one page of a webhook's deliveries, newest first
-- ($1 webhook, $2 owner, $3 status or NULL for all, $4 limit, $5 offset).
-- No lock.
--
-- Any page costs about the same: the page's keys are found by an index-only
-- scan from the nearer end of the history: pages in the older half are read
-- backwards from the oldest row, with the offset counted from that end using
-- the exact total from the counters (view postbox.delivery_totals, the same
-- snapshot as the index). Only the page's rows are then read, by primary key.
-- So the deepest page skips at most half the history, in the index:
-- deliveries_webhook_idx (webhook_id, created_at DESC, id DESC, INCLUDE
-- status), or for the dead letters (status 'failed', the filter that matters
-- in a long history) deliveries_failed_history_idx, which holds only them.
-- Other status filters skip the other statuses' entries too. One branch of
-- the four runs (one-time filters on $3 and $5).
WITH total AS MATERIALIZED (
    SELECT coalesce(sum(t.n), 0)::bigint AS n
    FROM postbox.webhooks w
    JOIN postbox.delivery_totals t ON t.webhook_id = w.id
    WHERE w.id = $1 AND w.owner_id = $2
      AND ($3::postbox.delivery_status IS NULL OR t.status = $3)
), page AS (
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
       AND $3::postbox.delivery_status IS DISTINCT FROM 'failed'
       AND $5::bigint <= (SELECT n FROM total) / 2
     ORDER BY d.created_at DESC, d.id DESC
     LIMIT $4 OFFSET $5)
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
       AND $3::postbox.delivery_status IS DISTINCT FROM 'failed'
       AND $5::bigint > (SELECT n FROM total) / 2
     ORDER BY d.created_at, d.id
     LIMIT greatest(least($4::bigint, (SELECT n FROM total) - $5::bigint), 0)
     OFFSET greatest((SELECT n FROM total) - $5::bigint - $4::bigint, 0))
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.status = 'failed'
       AND $3::postbox.delivery_status = 'failed'
       AND $5::bigint <= (SELECT n FROM total) / 2
     ORDER BY d.created_at DESC, d.id DESC
     LIMIT $4 OFFSET $5)
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.status = 'failed'
       AND $3::postbox.delivery_status = 'failed'
       AND $5::bigint > (SELECT n FROM total) / 2
     ORDER BY d.created_at, d.id
     LIMIT greatest(least($4::bigint, (SELECT n FROM total) - $5::bigint), 0)
     OFFSET greatest((SELECT n FROM total) - $5::bigint - $4::bigint, 0))
)
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, d.response_body, d.error_message, d.created_at, d.updated_at, d.completed_at
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.id = ANY (ARRAY(SELECT id FROM page)) AND w.owner_id = $2 AND d.webhook_id = $1
ORDER BY d.created_at DESC, d.id DESC
