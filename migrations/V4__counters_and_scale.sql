-- V4: counts and endpoint health that do not grow with history, and indexes
-- that keep every maintenance and API read on a bounded range at millions of
-- rows (docs/PERFORMANCE.md, "Scale of history").
-- Forward-only: never edit this file once it has landed; add V5__... instead.
--
-- Applying it locks postbox.deliveries against writes while it builds three
-- indexes and counts the table once (a few seconds per million rows).

-- Per-statement changes of the delivery counts, appended by the triggers
-- below in the writer's own transaction (so every snapshot sees counts and
-- rows agree) and folded into delivery_counts and webhook_activity by
-- sql/delivery_count_rollup.sql, which every maintenance run executes.
-- Append-only: concurrent writers never wait on each other's counter rows.
-- No foreign key: a delta written while its webhook is being deleted must not
-- fail or wait; readers join postbox.webhooks and the rollup drops orphans.
CREATE TABLE postbox.delivery_count_deltas (
    webhook_id           uuid NOT NULL,
    status               postbox.delivery_status NOT NULL,
    -- The hour of the rows' created_at (date_bin from the unix epoch: the
    -- same in every time zone), for the history pages.
    hour                 timestamptz NOT NULL,
    -- Rows gained (negative: lost) by this status in one statement.
    n                    bigint NOT NULL,
    -- Latest updated_at of a row with an attempt (the stats' last delivery).
    last_delivery_at     timestamptz,
    -- Latest completion of a row that entered 'success'.
    last_success_at      timestamptz,
    -- Earliest and latest time, and number, of rows that entered 'retrying'
    -- or 'failed' after an attempt (a failed attempt): completed_at for
    -- 'failed', updated_at for 'retrying'.
    first_failure_at     timestamptz,
    last_failure_at      timestamptz,
    failures             bigint NOT NULL DEFAULT 0
);
CREATE INDEX delivery_count_deltas_webhook_idx ON postbox.delivery_count_deltas (webhook_id);

-- Rolled-up counts: deliveries per (webhook, status). Exact count =
-- n + the sum of the pending deltas of the same key.
CREATE TABLE postbox.delivery_counts (
    webhook_id uuid NOT NULL,
    status     postbox.delivery_status NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (webhook_id, status)
);

-- The same per hour of created_at: where a history page's row lies without
-- counting the history (sql/delivery_list_by_webhook.sql). Rows that fall to
-- zero are deleted by the next rollup (through the partial index).
CREATE TABLE postbox.delivery_hour_counts (
    webhook_id uuid NOT NULL,
    status     postbox.delivery_status NOT NULL,
    hour       timestamptz NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (webhook_id, status, hour)
);
CREATE INDEX delivery_hour_counts_empty_idx ON postbox.delivery_hour_counts (webhook_id) WHERE n = 0;

-- Rolled-up outcomes per webhook, for the stats and auto-disable (and the
-- columns a postbox.webhook_health view needs). As of the latest rollup.
CREATE TABLE postbox.webhook_activity (
    webhook_id           uuid PRIMARY KEY,
    last_delivery_at     timestamptz,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    -- The first failed attempt after last_success_at; NULL when none.
    failing_since        timestamptz,
    -- Failed attempts since last_success_at.
    consecutive_failures bigint NOT NULL DEFAULT 0
);

COMMENT ON TABLE postbox.webhook_activity IS
    'Per-webhook outcome history as of the latest maintenance rollup (sql/delivery_count_rollup.sql).';

-- One function for the three statement-level triggers: each statement adds
-- one delta row per (webhook, status, hour of created_at) it changed, +1 per new row version and
-- -1 per old one, so a status that did not change cancels out. A trigger
-- with transition tables can serve one event only, hence three triggers.
CREATE FUNCTION postbox.deliveries_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO postbox.delivery_count_deltas
            (webhook_id, status, hour, n, last_delivery_at, last_success_at, first_failure_at, last_failure_at, failures)
        SELECT r.webhook_id, r.status, date_bin('1 hour', r.created_at, 'epoch'), count(*),
               max(r.updated_at) FILTER (WHERE r.attempts > 0),
               max(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status = 'success'),
               min(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0),
               max(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0),
               count(*) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0)
        FROM new_rows r
        GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO postbox.delivery_count_deltas (webhook_id, status, hour, n)
        SELECT r.webhook_id, r.status, date_bin('1 hour', r.created_at, 'epoch'), -count(*)
        FROM old_rows r
        GROUP BY 1, 2, 3;
    ELSE
        -- No join of the old and new rows (it tripled the trigger's cost): an
        -- outcome is a row version written in an outcome status with an
        -- attempt. Postbox moves rows into these statuses only from
        -- 'sending' (an outcome or a rescue); a manual UPDATE of a row that
        -- stays in one records the outcome again at the row's own time
        -- (harmless for the latest times, counted again in
        -- consecutive_failures).
        INSERT INTO postbox.delivery_count_deltas
            (webhook_id, status, hour, n, last_delivery_at, last_success_at, first_failure_at, last_failure_at, failures)
        SELECT v.webhook_id, v.status, v.hour, sum(v.n), max(v.delivered), max(v.succeeded),
               min(v.first_failed), max(v.last_failed), sum(v.failures)
        FROM (
            SELECT r.webhook_id, r.status, date_bin('1 hour', r.created_at, 'epoch') AS hour, count(*) AS n,
                   max(r.updated_at) FILTER (WHERE r.attempts > 0) AS delivered,
                   max(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status = 'success') AS succeeded,
                   min(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0) AS first_failed,
                   max(coalesce(r.completed_at, r.updated_at)) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0) AS last_failed,
                   count(*) FILTER (WHERE r.status IN ('retrying', 'failed') AND r.attempts > 0) AS failures
            FROM new_rows r
            GROUP BY 1, 2, 3
            UNION ALL
            SELECT o.webhook_id, o.status, date_bin('1 hour', o.created_at, 'epoch'), -count(*), NULL, NULL, NULL, NULL, 0
            FROM old_rows o
            GROUP BY 1, 2, 3
        ) v
        GROUP BY v.webhook_id, v.status, v.hour
        HAVING sum(v.n) <> 0 OR max(v.delivered) IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;

-- Created before the backfill: CREATE TRIGGER waits for the writers in
-- progress and holds theirs off until this migration commits, so the counts
-- below miss no row.
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON postbox.deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postbox.deliveries_count_changes();
CREATE TRIGGER deliveries_count_update AFTER UPDATE ON postbox.deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postbox.deliveries_count_changes();
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON postbox.deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postbox.deliveries_count_changes();

INSERT INTO postbox.delivery_hour_counts (webhook_id, status, hour, n)
SELECT d.webhook_id, d.status, date_bin('1 hour', d.created_at, 'epoch'), count(*)
FROM postbox.deliveries d
GROUP BY 1, 2, 3;

INSERT INTO postbox.delivery_counts (webhook_id, status, n)
SELECT h.webhook_id, h.status, sum(h.n)
FROM postbox.delivery_hour_counts h
GROUP BY h.webhook_id, h.status;

-- Outcomes so far, with the rule V2's auto-disable read from the attempts:
-- the first failed attempt after the latest success (including the successes
-- retention already removed, kept in webhooks.last_success_at).
INSERT INTO postbox.webhook_activity
    (webhook_id, last_delivery_at, last_success_at, last_failure_at, failing_since, consecutive_failures)
SELECT w.id, d.last_delivery_at, d.last_success_at, f.last_failure_at, f.failing_since, f.failures
FROM postbox.webhooks w
CROSS JOIN LATERAL (
    SELECT max(x.updated_at) FILTER (WHERE x.attempts > 0) AS last_delivery_at,
           greatest(w.last_success_at, max(x.completed_at) FILTER (WHERE x.status = 'success')) AS last_success_at
    FROM postbox.deliveries x
    WHERE x.webhook_id = w.id
) d
CROSS JOIN LATERAL (
    SELECT max(a.started_at) AS last_failure_at,
           min(a.started_at) FILTER (WHERE a.started_at > coalesce(d.last_success_at, '-infinity')) AS failing_since,
           count(*) FILTER (WHERE a.started_at > coalesce(d.last_success_at, '-infinity')) AS failures
    FROM postbox.deliveries x
    JOIN postbox.delivery_attempts a ON a.delivery_id = x.id
    WHERE x.webhook_id = w.id
      AND x.status <> 'success'
      AND (a.response_code IS NULL OR a.response_code NOT BETWEEN 200 AND 299)
) f
WHERE d.last_delivery_at IS NOT NULL OR f.last_failure_at IS NOT NULL;

-- Success retention reads successes only: deliveries_finished_idx held the
-- dead letters too, which the scan walked past on every run (V2 gave the
-- failed ones their own index, deliveries_failed_idx).
CREATE INDEX deliveries_succeeded_idx ON postbox.deliveries (completed_at)
    WHERE status = 'success';
DROP INDEX postbox.deliveries_finished_idx;

-- A webhook's history, newest first, with what a page needs to skip rows
-- without reading the table (an index-only scan): the id breaks ties in the
-- order the API pages by, and the status serves the status filter. Same
-- entries as before (status changes are never HOT updates anyway).
CREATE INDEX deliveries_webhook_history_idx
    ON postbox.deliveries (webhook_id, created_at DESC, id DESC) INCLUDE (status);
DROP INDEX postbox.deliveries_webhook_idx;
ALTER INDEX postbox.deliveries_webhook_history_idx RENAME TO deliveries_webhook_idx;
-- A webhook's dead letters, newest first: a page of the failed filter skips
-- only dead letters. A dead letter keeps the two index entries it had
-- (deliveries_finished_idx's is gone); the other outcomes gain none.
CREATE INDEX deliveries_failed_history_idx
    ON postbox.deliveries (webhook_id, created_at DESC, id DESC) WHERE status = 'failed';

-- Where event retention has looked: every event older than
-- events_checked_until was examined once when it crossed the retention
-- cutoff; events_swept_at/_id is the place of the slow sweep that
-- re-examines older events in turn (those whose deliveries went later by
-- other means than retention, e.g. a webhook DELETE). events_released counts
-- events the delivery retention deleted with their last delivery, reported by
-- the next event retention batch.
CREATE TABLE postbox.retention_state (
    singleton            boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    events_checked_until timestamptz NOT NULL DEFAULT '-infinity',
    events_swept_at      timestamptz NOT NULL DEFAULT '-infinity',
    events_swept_id      uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    events_released      bigint NOT NULL DEFAULT 0
);
INSERT INTO postbox.retention_state DEFAULT VALUES;

-- Exact deliveries per (webhook, status), of the webhooks that exist: the
-- rolled-up counts plus the deltas not folded yet. Every count reader goes
-- through here; a filter on webhook_id reaches both tables by their keys.
CREATE VIEW postbox.delivery_totals AS
SELECT u.webhook_id, u.status, sum(u.n)::bigint AS n
FROM (SELECT k.webhook_id, k.status, k.n FROM postbox.delivery_counts k
      UNION ALL
      SELECT x.webhook_id, x.status, x.n FROM postbox.delivery_count_deltas x) u
WHERE EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = u.webhook_id)
GROUP BY u.webhook_id, u.status;

-- The same per hour of created_at, for the history pages.
CREATE VIEW postbox.delivery_hour_totals AS
SELECT u.webhook_id, u.status, u.hour, sum(u.n)::bigint AS n
FROM (SELECT k.webhook_id, k.status, k.hour, k.n FROM postbox.delivery_hour_counts k
      UNION ALL
      SELECT x.webhook_id, x.status, x.hour, x.n FROM postbox.delivery_count_deltas x) u
WHERE EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = u.webhook_id)
GROUP BY u.webhook_id, u.status, u.hour;

-- The views keep their columns; they read the counters now.
-- Per-webhook totals, from delivery_totals.
CREATE OR REPLACE VIEW postbox.webhook_stats AS
SELECT w.id AS webhook_id,
       c.total, c.success, c.failed, c.pending, c.retrying,
       CASE WHEN c.success + c.failed = 0 THEN NULL
            ELSE round(100.0 * c.success / (c.success + c.failed), 2)
       END AS success_rate,
       greatest(a.last_delivery_at,
                (SELECT max(x.last_delivery_at) FROM postbox.delivery_count_deltas x
                 WHERE x.webhook_id = w.id)) AS last_delivery_at
FROM postbox.webhooks w
CROSS JOIN LATERAL (
    SELECT coalesce(sum(u.n), 0)::bigint AS total,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'success'), 0)::bigint AS success,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(u.n) FILTER (WHERE u.status IN ('pending', 'sending')), 0)::bigint AS pending,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'retrying'), 0)::bigint AS retrying
    FROM postbox.delivery_totals u
    WHERE u.webhook_id = w.id
) c
LEFT JOIN postbox.webhook_activity a ON a.webhook_id = w.id;

-- Queue-wide counts. Exact from the counters for every status. Queued rows
-- (pending, retrying) split into due now (waiting) and due later (delayed) by
-- counting entries of deliveries_due_idx, at most 100,000 on a side: the due
-- side first; only when it holds more, the future side. Exact while either
-- side holds at most 100,000 rows; beyond that delayed is reported as 100,000
-- and waiting as the rest (docs/OPERATIONS.md). While the queue is paused,
-- due work counts as paused instead of waiting.
CREATE OR REPLACE VIEW postbox.queue_stats AS
WITH s AS (SELECT paused FROM postbox.queue_state),
t AS (
    SELECT coalesce(sum(u.n) FILTER (WHERE u.status IN ('pending', 'retrying')), 0)::bigint AS queued,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'sending'), 0)::bigint AS active,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'success'), 0)::bigint AS completed,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'failed'), 0)::bigint AS failed
    FROM postbox.delivery_totals u
),
due AS (
    SELECT count(*) AS seen FROM (
        SELECT 1 FROM postbox.deliveries d
        WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= now()
        LIMIT 100001) x
),
c AS (
    SELECT t.*,
           CASE WHEN due.seen <= 100000 THEN least(due.seen, t.queued)
                ELSE greatest(t.queued - (
                    SELECT count(*) FROM (
                        SELECT 1 FROM postbox.deliveries d
                        WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at > now()
                        LIMIT 100000) y), 0)
           END AS due
    FROM t, due
)
SELECT CASE WHEN s.paused THEN 0 ELSE c.due END AS waiting,
       c.active, c.completed, c.failed, c.queued - c.due AS delayed,
       CASE WHEN s.paused THEN c.due ELSE 0 END AS paused
FROM c, s;
