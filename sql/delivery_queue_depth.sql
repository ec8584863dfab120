-- delivery_queue_depth: the queue gauges for /metrics, cheap enough to run on
-- every scrape (the route caches it for a second). $1 now.
-- Exact counts only where a small partial index holds the rows:
-- pending/retrying (deliveries_due_idx), sending (deliveries_lease_idx),
-- failed (deliveries_failed_idx, V2), events awaiting fan-out
-- (events_fanout_pending_idx). Successes can be millions of rows: their count
-- is the planner's estimate of the table (pg_class.reltuples, kept by
-- autovacuum/ANALYZE) minus the exact counts, NULL before the first ANALYZE.
-- Oldest due: the first entry of deliveries_due_idx at or before $1.
WITH c AS MATERIALIZED (  -- evaluated once, though read by several columns
    SELECT
        (SELECT count(*) FROM postbox.deliveries
         WHERE status IN ('pending', 'retrying') AND status = 'pending') AS pending,
        (SELECT count(*) FROM postbox.deliveries
         WHERE status IN ('pending', 'retrying') AND status = 'retrying') AS retrying,
        (SELECT count(*) FROM postbox.deliveries WHERE status = 'sending') AS sending,
        (SELECT count(*) FROM postbox.deliveries WHERE status = 'failed') AS failed,
        (SELECT count(*) FROM postbox.events WHERE fanout_pending) AS fanout_pending,
        (SELECT min(next_attempt_at) FROM postbox.deliveries
         WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1) AS oldest_due,
        (SELECT reltuples::bigint FROM pg_class
         WHERE oid = 'postbox.deliveries'::regclass) AS estimated_total,
        (SELECT paused FROM postbox.queue_state) AS paused
)
SELECT pending, retrying, sending, failed, fanout_pending,
       CASE WHEN estimated_total < 0 THEN NULL
            ELSE greatest(estimated_total - pending - retrying - sending - failed, 0)
       END AS success_estimate,
       coalesce(extract(epoch FROM $1 - oldest_due)::float8, 0) AS oldest_due_seconds,
       paused
FROM c
