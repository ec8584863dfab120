-- delivery_list_by_webhook: one page of a webhook's deliveries, newest first
-- ($1 webhook, $2 owner, $3 status or NULL for all, $4 limit, $5 offset).
-- No lock.
--
-- Any page costs about the same, whatever the history holds: the counters
-- per hour of created_at (view postbox.delivery_hour_totals: exact, in the
-- same snapshot as the rows) say which hour holds the page's first row and
-- how many newer rows there are; the page's keys are then read by an
-- index-only scan that seeks to that hour and skips at most half of it: from
-- the hour's newest row forwards, or, when the page ends inside the hour
-- and is nearer its oldest row, from that one backwards. Only the page's
-- rows are then read, by primary key. The index is deliveries_webhook_idx
-- (webhook_id, created_at DESC, id DESC, INCLUDE status), or for the dead
-- letters (status 'failed') deliveries_failed_history_idx, which holds only
-- them; other status filters skip the other statuses' entries of the hour
-- too. One branch of the four runs (one-time filters on $3 and the place;
-- a LIMIT's OFFSET is computed even where its branch does not run, hence
-- the greatest(..., 0)).
WITH hours AS MATERIALIZED (
    SELECT t.hour, sum(t.n)::bigint AS n
    FROM postbox.webhooks w
    JOIN postbox.delivery_hour_totals t ON t.webhook_id = w.id
    WHERE w.id = $1 AND w.owner_id = $2
      AND ($3::postbox.delivery_status IS NULL OR t.status = $3)
    GROUP BY t.hour
    HAVING sum(t.n) > 0
), place AS MATERIALIZED (
    -- The hour holding row $5 (0-based, newest first): skip = its rows
    -- newer than the page, n = its size. No row when $5 is past the end.
    SELECT h.hour, h.n, $5::bigint - h.newer AS skip,
           ($5::bigint - h.newer) * 2 > h.n AND $5::bigint - h.newer + $4::bigint <= h.n AS backwards
    FROM (SELECT hour, n, coalesce(sum(n) OVER (ORDER BY hour DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer
          FROM hours) h
    WHERE h.newer <= $5::bigint AND $5::bigint < h.newer + h.n
), page AS (
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.created_at < (SELECT hour FROM place) + interval '1 hour'
       AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
       AND $3::postbox.delivery_status IS DISTINCT FROM 'failed'
       AND NOT (SELECT backwards FROM place)
     ORDER BY d.created_at DESC, d.id DESC
     LIMIT $4 OFFSET (SELECT skip FROM place))
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.created_at >= (SELECT hour FROM place)
       AND ($3::postbox.delivery_status IS NULL OR d.status = $3)
       AND $3::postbox.delivery_status IS DISTINCT FROM 'failed'
       AND (SELECT backwards FROM place)
     ORDER BY d.created_at, d.id
     LIMIT $4 OFFSET greatest((SELECT n - skip - $4::bigint FROM place), 0))
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.created_at < (SELECT hour FROM place) + interval '1 hour'
       AND d.status = 'failed'
       AND $3::postbox.delivery_status = 'failed'
       AND NOT (SELECT backwards FROM place)
     ORDER BY d.created_at DESC, d.id DESC
     LIMIT $4 OFFSET (SELECT skip FROM place))
    UNION ALL
    (SELECT d.id
     FROM postbox.deliveries d
     WHERE d.webhook_id = $1
       AND d.created_at >= (SELECT hour FROM place)
       AND d.status = 'failed'
       AND $3::postbox.delivery_status = 'failed'
       AND (SELECT backwards FROM place)
     ORDER BY d.created_at, d.id
     LIMIT $4 OFFSET greatest((SELECT n - skip - $4::bigint FROM place), 0))
)
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, d.response_body, d.error_message, d.created_at, d.updated_at, d.completed_at, d.batch_id,
       d.ordering_key
FROM postbox.deliveries d
JOIN postbox.webhooks w ON w.id = d.webhook_id
WHERE d.id = ANY (ARRAY(SELECT id FROM page)) AND w.owner_id = $2 AND d.webhook_id = $1
ORDER BY d.created_at DESC, d.id DESC
