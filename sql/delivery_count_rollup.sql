-- delivery_count_rollup: folds the pending per-statement deltas
-- (delivery_count_deltas, written by the deliveries triggers of
-- migrations/V4__counters_and_scale.sql) into delivery_counts,
-- delivery_hour_counts and webhook_activity, in one transaction, so every reader's sum (counts +
-- pending deltas) stays exact across it. Drops the counters of deleted
-- webhooks. Returns the deltas folded.
--
-- Locks: deletes the delta rows it read (a concurrent writer's new deltas are
-- not in its snapshot and stay for the next rollup); upserts the counter rows
-- of the webhooks concerned (primary keys). Reads: every delta (a sequential
-- scan of a table that holds only what was written since the previous run),
-- the webhooks by primary key, the small counter tables for orphans, and
-- delivery_hour_counts by its primary key (a deleted webhook's hours) and
-- through delivery_hour_counts_empty_idx (hours at zero).
--
-- Runs in the maintenance job, under the maintenance lock: one at a time.
-- (Two at once would still keep the counts exact, the upsert adds, but the
-- later could overwrite webhook_activity from the state it read before.)
--
-- Outcome order: webhook_activity.failing_since is the first failure after
-- the latest success. A delta records its statement's earliest and latest
-- failure; when a success falls between them (only a multi-row manual
-- statement with mixed timestamps can do that: every Postbox statement stamps
-- its rows with one instant), the latest one counts, which can only delay an
-- auto-disable, never hasten it.
WITH moved AS MATERIALIZED (
    DELETE FROM postbox.delivery_count_deltas RETURNING *
), live AS MATERIALIZED (
    SELECT m.* FROM moved m
    WHERE EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = m.webhook_id)
), counted AS (
    INSERT INTO postbox.delivery_counts AS c (webhook_id, status, n)
    SELECT l.webhook_id, l.status, sum(l.n)
    FROM live l
    GROUP BY l.webhook_id, l.status
    HAVING sum(l.n) <> 0
    ON CONFLICT (webhook_id, status) DO UPDATE SET n = c.n + excluded.n
), hours AS (
    INSERT INTO postbox.delivery_hour_counts AS h (webhook_id, status, hour, n)
    SELECT l.webhook_id, l.status, l.hour, sum(l.n)
    FROM live l
    GROUP BY l.webhook_id, l.status, l.hour
    HAVING sum(l.n) <> 0
    ON CONFLICT (webhook_id, status, hour) DO UPDATE SET n = h.n + excluded.n
), latest AS MATERIALIZED (
    SELECT l.webhook_id,
           greatest(a.last_success_at, max(l.last_success_at)) AS last_success_at,
           greatest(a.last_delivery_at, max(l.last_delivery_at)) AS last_delivery_at,
           greatest(a.last_failure_at, max(l.last_failure_at)) AS last_failure_at,
           -- The state's own streak, as seen from the new latest success.
           CASE WHEN a.failing_since > coalesce(greatest(a.last_success_at, max(l.last_success_at)), '-infinity')
                THEN a.failing_since
                WHEN a.last_failure_at > coalesce(greatest(a.last_success_at, max(l.last_success_at)), '-infinity')
                THEN a.last_failure_at
           END AS kept_since,
           CASE WHEN a.failing_since > coalesce(greatest(a.last_success_at, max(l.last_success_at)), '-infinity')
                THEN a.consecutive_failures
                WHEN a.last_failure_at > coalesce(greatest(a.last_success_at, max(l.last_success_at)), '-infinity')
                THEN 1
                ELSE 0
           END AS kept_failures
    FROM live l
    LEFT JOIN postbox.webhook_activity a ON a.webhook_id = l.webhook_id
    GROUP BY l.webhook_id, a.webhook_id
    HAVING max(l.last_delivery_at) IS NOT NULL OR max(l.last_success_at) IS NOT NULL
        OR max(l.last_failure_at) IS NOT NULL
), streak AS (
    SELECT t.webhook_id,
           min(CASE WHEN l.first_failure_at > coalesce(t.last_success_at, '-infinity') THEN l.first_failure_at
                    WHEN l.last_failure_at > coalesce(t.last_success_at, '-infinity') THEN l.last_failure_at
               END) AS since,
           sum(CASE WHEN l.first_failure_at > coalesce(t.last_success_at, '-infinity') THEN l.failures
                    WHEN l.last_failure_at > coalesce(t.last_success_at, '-infinity') THEN 1
                    ELSE 0
               END) AS failures
    FROM latest t
    JOIN live l ON l.webhook_id = t.webhook_id
    GROUP BY t.webhook_id
), activity AS (
    INSERT INTO postbox.webhook_activity AS a
        (webhook_id, last_delivery_at, last_success_at, last_failure_at, failing_since, consecutive_failures)
    SELECT t.webhook_id, t.last_delivery_at, t.last_success_at, t.last_failure_at,
           least(t.kept_since, s.since), t.kept_failures + coalesce(s.failures, 0)
    FROM latest t
    LEFT JOIN streak s ON s.webhook_id = t.webhook_id
    ON CONFLICT (webhook_id) DO UPDATE
    SET last_delivery_at = excluded.last_delivery_at,
        last_success_at = excluded.last_success_at,
        last_failure_at = excluded.last_failure_at,
        failing_since = excluded.failing_since,
        consecutive_failures = excluded.consecutive_failures
), orphan_counts AS (
    DELETE FROM postbox.delivery_counts c
    WHERE NOT EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = c.webhook_id)
), orphan_hours AS (
    -- A deleted webhook's hours (its DELETE cascade wrote deltas for them),
    -- and the hours the previous rollup brought to zero.
    DELETE FROM postbox.delivery_hour_counts h
    WHERE h.webhook_id = ANY (ARRAY(
              SELECT DISTINCT m.webhook_id FROM moved m
              WHERE NOT EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = m.webhook_id)))
       OR h.n = 0
), orphan_activity AS (
    DELETE FROM postbox.webhook_activity a
    WHERE NOT EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = a.webhook_id)
)
SELECT count(*) AS folded FROM moved
