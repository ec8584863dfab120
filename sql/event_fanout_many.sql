-- event_fanout_many: turns up to $1 committed events into deliveries, one per
-- webhook that was subscribed when the event committed (see below), and
-- claims up to $3 of the new deliveries at once: they are inserted as
-- 'sending', attempt 1, under a lease of $5 seconds, and returned with all a
-- request needs. The others (over $3; over a webhook's room: $7[i] for the
-- webhook $4[i] that already has requests in flight in this dispatcher, $6
-- for any other; webhook inactive now; or while the queue is paused) are
-- inserted as 'pending' for delivery_claim. $2 = now. Each claim is returned
-- with its lease_expires_at: $2 + $5 plus the time this statement had run
-- when the row was written (so a wait before it does not shorten the lease;
-- the caller checks what is left, since a wait after it, such as a foreign-key
-- check, still can).
--
-- Filtered (V9): a webhook whose current `filter` the payload does not
-- match gets no row. A batched webhook's rows are never claimed here: they
-- are queued 'pending', due maxWaitMs later, for delivery_claim_batch_many.
--
-- Ordered delivery (V12; docs/WEBHOOKS.md): a keyed event's rows are
-- written in commit order per key: an event waits (batch) while an earlier
-- one of its key waits for its fan-out elsewhere, or (deferred) is not
-- finished by this statement. Per (webhook, key) line, the batch's first
-- row becomes the line's head when the line is empty (line_up: its row in
-- postbox.ordering_lines inserted, under the line's advisory lock), every
-- other keyed row is written 'held'; a superseded event's rows are written
-- 'cancelled'.
-- Unkeyed events take none of these steps.
--
-- Subscribed as of commit: webhook W of the event's owner, active, whose
-- event_types hold the type, 'group.*' or '*', in the state W had before the
-- earliest recorded change of W that the event committed before (its txid
-- visible in the change's snapshot: postbox.webhook_subscription_changes),
-- or W's current state when the event committed after every change. Only
-- webhooks with such a change cost a lookup (index
-- webhook_subscription_changes_webhook_idx); the others are read as today.
--
-- Bounded: every event takes up to 32 webhooks per statement (an event of an
-- owner with 32 matching webhooks or fewer is always done in one statement,
-- so ordinary events are written once); beyond that, at most $8 more
-- deliveries per statement, shared out round robin between the batch's
-- events (each takes at most max(32, ceil($8 / events)) webhooks, in webhook
-- id order, through webhooks_owner_fanout_idx). An event with more keeps
-- fanout_pending, and fanout_cursor records the last webhook id done; the
-- next statement continues after it. So one owner with thousands of webhooks
-- cannot hold up the other owners' events of the same batch, and a statement
-- creates at most 32 x $1 + $8 deliveries.
--
-- Always returns at least one row: the batch summary (events, partial,
-- deliveries, queued, next_due, barrier_clear) with the claimed delivery's
-- columns, which are NULL when nothing was claimed.
-- - events: events taken; partial: how many of them still wait for more.
-- - next_due: the earliest due time of queued work, as of this statement
--   (none while the queue is paused).
-- - barrier_clear: no producer transaction that may have read
--   dispatcher_waiting = false is still open (each producer holds the shared
--   form of this advisory lock until it commits). Taken and released at once
--   (a session lock), so producers never wait on it.
--
-- Narrow rows: the window steps carry ids, ranks and flags only; the
-- payload and the webhook's request columns are read by primary key for the
-- claimed rows alone, after the INSERT (a join of the inserted rows with the
-- decided set, both of sizes a generic plan guesses, became a nested loop
-- rescanning one per row of the other: 3.4 ms of a 12.5 ms statement for 127
-- claims; docs/PERFORMANCE.md, "Completion").
--
-- Locks the candidate webhooks FOR KEY SHARE SKIP LOCKED (see keyed) and the
-- batch's event rows (SKIP LOCKED: concurrent dispatchers take
-- disjoint batches), read through events_fanout_pending_idx, so the cost
-- follows the backlog, not the table; reaches them again by primary key
-- (= ANY of an array), a plan that does not depend on statistics. The unique
-- key (event_id, webhook_id) makes a repeated fan-out add nothing.
WITH batch AS MATERIALIZED (
    SELECT e.id, e.event_type, e.owner_id, e.payload, e.created_at, e.txid,
           coalesce(e.fanout_cursor, '00000000-0000-0000-0000-000000000000') AS after,
           ARRAY[e.event_type, split_part(e.event_type, '.', 1) || '.*', '*'] AS patterns,
           e.ordering_key, e.ordering_seq, e.superseded_by
    FROM postbox.events e
    WHERE e.fanout_pending
    ORDER BY e.created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), keyed_batch AS MATERIALIZED (
    -- Whether any event of the batch has an ordering key: the ordering
    -- steps below are skipped whole (a one-time filter) when none has.
    SELECT coalesce(bool_or(b.ordering_key IS NOT NULL), false) AS any FROM batch b
), outside AS MATERIALIZED (
    -- Ordered delivery (V12): per key of the batch, the earliest event still
    -- waiting for its fan-out outside this batch (another dispatcher holds
    -- it, or the batch's LIMIT left it out), if any: one ordered walk of
    -- events_ordering_pending_idx per key, which stops at the first event
    -- not in the batch (linear in the batch, however busy the key). Empty
    -- for unkeyed events.
    SELECT k.owner_id, k.ordering_key, o.ordering_seq AS first_outside
    FROM (SELECT DISTINCT b.owner_id, b.ordering_key FROM batch b
          WHERE b.ordering_key IS NOT NULL AND (SELECT kb.any FROM keyed_batch kb)) k
    CROSS JOIN LATERAL (
        SELECT p.ordering_seq
        FROM postbox.events p
        WHERE p.owner_id = k.owner_id
          AND p.ordering_key = k.ordering_key
          AND p.fanout_pending
          AND p.ordering_key IS NOT NULL
          AND p.id NOT IN (SELECT a.id FROM batch a)
        ORDER BY p.ordering_seq
        LIMIT 1
    ) o
), waiting AS MATERIALIZED (
    -- A keyed event behind such an event waits (left locked, untouched: no
    -- candidates, not marked), so a key's deliveries are always written in
    -- commit order. Usually none.
    SELECT w.id
    FROM batch w
    JOIN outside o
      ON o.owner_id = w.owner_id AND o.ordering_key = w.ordering_key
    WHERE w.ordering_seq > o.first_outside
), share AS MATERIALIZED (
    SELECT greatest(ceil($8::bigint::numeric / greatest(count(*), 1))::bigint, 32) AS per_event FROM batch
), seen AS MATERIALIZED (
    -- Per event: the webhooks changed after it committed, among the changes
    -- of webhooks that belong, or belonged, to its owner (two equi-joins on
    -- webhook_subscription_changes_owner_idx / _prior_owner_idx, so that
    -- only the owner's changes are tested).
    SELECT bc.event_id, array_agg(DISTINCT bc.webhook_id) AS webhooks
    FROM (
        SELECT b.id AS event_id, b.txid, c.webhook_id, c.snapshot
        FROM batch b
        JOIN postbox.webhook_subscription_changes c ON c.owner_id = b.owner_id
        UNION ALL
        SELECT b.id, b.txid, c.webhook_id, c.snapshot
        FROM batch b
        JOIN postbox.webhook_subscription_changes c
          ON c.prior_owner_id = b.owner_id AND c.prior_owner_id <> c.owner_id
    ) bc
    WHERE coalesce(pg_visible_in_snapshot(bc.txid, bc.snapshot), true)
    GROUP BY bc.event_id
), candidates AS MATERIALIZED (
    -- Up to per_event + 1 subscribed webhooks per event after its cursor
    -- (the extra one only says that more remain).
    SELECT b.id AS event_id, b.event_type, b.created_at AS event_created_at,
           b.owner_id AS event_owner_id, b.ordering_key, b.ordering_seq, b.superseded_by,
           w.id AS webhook_id, w.active, w.batch_max_wait_ms, w.gated,
           row_number() OVER (PARTITION BY b.id ORDER BY w.id) AS rank_in_event
    FROM batch b
    LEFT JOIN seen s ON s.event_id = b.id
    CROSS JOIN LATERAL (
        SELECT w.*
        FROM (
            SELECT w.id, w.owner_id, w.active, w.event_types,
                   w.filter_contains, w.filter_path, w.batch_max_wait_ms,
                   w.paused OR w.rate_limit IS NOT NULL OR w.max_in_flight IS NOT NULL AS gated
            FROM postbox.webhooks w
            WHERE w.owner_id = b.owner_id AND w.id > b.after
            UNION ALL
            -- Webhooks that were the owner's when the event committed.
            SELECT w.id, w.owner_id, w.active, w.event_types,
                   w.filter_contains, w.filter_path, w.batch_max_wait_ms,
                   w.paused OR w.rate_limit IS NOT NULL OR w.max_in_flight IS NOT NULL AS gated
            FROM postbox.webhooks w
            WHERE w.id = ANY (s.webhooks) AND w.owner_id <> b.owner_id AND w.id > b.after
        ) w
        LEFT JOIN LATERAL (
            SELECT c.prior_owner_id, c.prior_active, c.prior_event_types
            FROM postbox.webhook_subscription_changes c
            WHERE w.id = ANY (s.webhooks)
              AND c.webhook_id = w.id
              AND coalesce(pg_visible_in_snapshot(b.txid, c.snapshot), true)
            ORDER BY c.id
            LIMIT 1
        ) was ON true
        WHERE CASE WHEN was.prior_owner_id IS NULL
                   THEN w.owner_id = b.owner_id AND w.active AND w.event_types && b.patterns
                   ELSE was.prior_owner_id = b.owner_id AND was.prior_active
                        AND was.prior_event_types && b.patterns
              END
          -- The webhook's payload filter (V9; its current one): containment
          -- and a path predicate, both optional. Silent (NULL: no match) for
          -- a payload the path cannot judge, and the _tz form, whose date
          -- comparisons across time zones (session TimeZone) do not raise,
          -- so one odd event cannot stop the fan-out.
          AND (w.filter_contains IS NULL OR b.payload @> w.filter_contains)
          AND (w.filter_path IS NULL
               OR coalesce(jsonb_path_match_tz(b.payload, w.filter_path, '{}', true), false))
        ORDER BY w.id
        LIMIT (SELECT per_event + 1 FROM share)
    ) w
    WHERE b.id NOT IN (SELECT wt.id FROM waiting wt)
), keyed AS MATERIALIZED (
    -- The candidate webhooks, locked FOR KEY SHARE (what the deliveries'
    -- foreign-key check takes anyway) but SKIP LOCKED: a webhook that a
    -- DELETE holds is skipped instead of waited for, so its DELETE cannot
    -- stall every owner's fan-out, nor fail it with 23503 when it commits.
    -- (A separate CTE: locking clauses are not allowed under the UNION.)
    SELECT w.id
    FROM postbox.webhooks w
    WHERE w.id = ANY (ARRAY(SELECT DISTINCT c.webhook_id FROM candidates c))
    FOR KEY SHARE OF w SKIP LOCKED
), blocked AS MATERIALIZED (
    -- Events with a candidate webhook skipped above: not done this pass
    -- (fanout_pending and cursor kept), so nothing is lost if the DELETE
    -- rolls back; their other deliveries are inserted now (the unique key
    -- makes the repeat add nothing).
    SELECT DISTINCT c.event_id
    FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM keyed k WHERE k.id = c.webhook_id)
), picked AS MATERIALIZED (
    -- Each event's first 32 webhooks; then round robin over the batch's
    -- events (every event's 33rd webhook, then every event's 34th, ...), up
    -- to $8 more in all.
    SELECT c.*,
           (c.rank_in_event <= 32
            OR (c.rank_in_event <= (SELECT per_event FROM share)
                AND row_number() OVER (PARTITION BY c.rank_in_event <= 32
                                       ORDER BY c.rank_in_event, c.event_created_at, c.event_id) <= $8::bigint)) AS picked
    FROM candidates c
), progress AS MATERIALIZED (
    -- Events with candidates left over, and the last webhook done for each.
    SELECT p.event_id,
           (array_agg(p.webhook_id ORDER BY p.rank_in_event DESC) FILTER (WHERE p.picked))[1] AS done_until
    FROM picked p
    GROUP BY p.event_id
    HAVING NOT bool_and(p.picked)
), unfinished AS MATERIALIZED (
    -- Ordered delivery: the keys of the keyed events this statement does
    -- not finish (more webhooks than it takes, or one skipped while
    -- locked), with the earliest such event of each (usually none).
    SELECT c.event_owner_id, c.ordering_key, min(c.ordering_seq) AS seq
    FROM candidates c
    WHERE (SELECT kb.any FROM keyed_batch kb)
      AND c.ordering_key IS NOT NULL
      AND (c.event_id IN (SELECT pr.event_id FROM progress pr)
           OR c.event_id IN (SELECT bl.event_id FROM blocked bl))
    GROUP BY c.event_owner_id, c.ordering_key
), deferred AS MATERIALIZED (
    -- The later events of those keys wait for the next statement, untouched.
    SELECT DISTINCT c.event_id
    FROM candidates c
    JOIN unfinished u
      ON u.event_owner_id = c.event_owner_id
     AND u.ordering_key = c.ordering_key
     AND c.ordering_seq > u.seq
    WHERE (SELECT kb.any FROM keyed_batch kb)
), marked AS (
    UPDATE postbox.events e
    SET fanout_pending = e.id = ANY (ARRAY(SELECT event_id FROM progress))
                         OR e.id = ANY (ARRAY(SELECT event_id FROM blocked))
                         OR e.id = ANY (ARRAY(SELECT event_id FROM deferred)),
        fanout_cursor = CASE WHEN e.id = ANY (ARRAY(SELECT event_id FROM blocked))
                               OR e.id = ANY (ARRAY(SELECT event_id FROM deferred))
                             THEN e.fanout_cursor
                             WHEN e.id = ANY (ARRAY(SELECT event_id FROM progress))
                             THEN coalesce((SELECT pr.done_until FROM progress pr WHERE pr.event_id = e.id),
                                           e.fanout_cursor)
                             ELSE e.fanout_cursor END
    WHERE e.id = ANY (ARRAY(SELECT b.id FROM batch b WHERE b.id NOT IN (SELECT wt.id FROM waiting wt)))
    RETURNING e.id
), matched AS MATERIALIZED (
    SELECT p.*,
           row_number() OVER (PARTITION BY p.webhook_id ORDER BY p.event_created_at, p.event_id) AS rank_in_webhook,
           row_number() OVER (ORDER BY p.event_created_at, p.event_id, p.webhook_id) AS rank_in_batch
    FROM picked p
    WHERE p.picked
      AND p.webhook_id IN (SELECT k.id FROM keyed k)
      AND p.event_id NOT IN (SELECT df.event_id FROM deferred df)
), busy AS MATERIALIZED (
    SELECT b.webhook_id, b.room
    FROM unnest($4::uuid[], $7::bigint[]) AS b(webhook_id, room)
), decided AS MATERIALIZED (
    SELECT mt.*, postbox.uuid_v7() AS id,
           (mt.active
            AND NOT (SELECT paused FROM postbox.queue_state)
            AND mt.rank_in_batch <= $3::bigint
            AND mt.rank_in_webhook <= coalesce(b.room, $6::bigint)
            -- A batched webhook's deliveries wait for its batch claim.
            AND mt.batch_max_wait_ms IS NULL
            -- issue 15: a paused or limited webhook, or one whose breaker is
            -- not closed or that a Retry-After throttles, is left to
            -- delivery_claim, which applies its gates.
            AND NOT mt.gated
            AND NOT EXISTS (SELECT 1 FROM postbox.webhook_state s
                            WHERE s.webhook_id = mt.webhook_id
                              AND (s.breaker_state <> 'closed' OR s.throttled_until > $2))) AS claim
    FROM matched mt
    LEFT JOIN busy b ON b.webhook_id = mt.webhook_id
), line_first AS MATERIALIZED (
    -- Ordered delivery (V12): each (webhook, key) line's first new row of
    -- this batch (lowest ordering_seq), not superseded and not a repeat of
    -- an existing (event, webhook) pair (so that it never names a line's
    -- head without being written), and whether the line already has held
    -- rows (then it waits behind them). Empty for unkeyed events.
    -- Each probe must reach its own index (deliveries_held_idx; the unique
    -- key) in a generic plan made on a small table: deliveries_webhook_idx
    -- walked the webhook's whole history per row, 2,400 rows read per
    -- delivery in the keyed drain (tests/it/plans.rs). Scalar subqueries:
    -- an EXISTS becomes an anti-join that drops the ORDER BY.
    SELECT DISTINCT ON (d.webhook_id, d.ordering_key)
           d.webhook_id, d.ordering_key, d.id,
           (SELECT h.id FROM postbox.deliveries h
            WHERE h.webhook_id = d.webhook_id AND h.ordering_key = d.ordering_key
              AND h.status = 'held'
            ORDER BY h.webhook_id, h.ordering_key, h.ordering_seq
            LIMIT 1) IS NOT NULL AS behind_held
    FROM decided d
    WHERE (SELECT kb.any FROM keyed_batch kb)
      AND d.ordering_key IS NOT NULL
      AND d.superseded_by IS NULL
      -- By event (the unique key's first column; the webhook compared in a
      -- form no index serves, so the plan cannot pick the webhook's index).
      AND (SELECT x.id FROM postbox.deliveries x
           WHERE x.event_id = d.event_id AND x.webhook_id IS NOT DISTINCT FROM d.webhook_id
           LIMIT 1) IS NULL
    ORDER BY d.webhook_id, d.ordering_key, d.ordering_seq
), line_up AS (
    -- The line's row (postbox.ordering_lines), inserted with that row as its
    -- head when the line is empty; a line that has a row keeps it (the row
    -- is held). The line's advisory lock is taken first (as
    -- sql/ordering_lines_lock.sql takes it), in key order (a volatile
    -- function is evaluated after the sort), and held until this statement
    -- commits: whoever ends the line's head takes the same lock before its
    -- promotion, so the promotion, a later statement, sees every row held
    -- here; and no two statements lock lines in different orders. A line
    -- with held rows but no row (a lost promotion) gets one naming no
    -- delivery (the nil uuid) and is queued in ordering_dirty below for the
    -- promotion pass. Returns the rows inserted.
    INSERT INTO postbox.ordering_lines AS l (webhook_id, ordering_key, head)
    SELECT f.webhook_id, f.ordering_key,
           CASE WHEN f.behind_held THEN '00000000-0000-0000-0000-000000000000'::uuid ELSE f.id END
    FROM (SELECT g.*,
                 pg_advisory_xact_lock(7138403, hashtext(g.webhook_id::text || '/' || g.ordering_key)) AS locked
          FROM line_first g
          ORDER BY g.webhook_id, g.ordering_key) f
    ON CONFLICT (webhook_id, ordering_key) DO NOTHING
    RETURNING l.webhook_id, l.ordering_key, l.head
), line_lost AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT u.webhook_id, u.ordering_key FROM line_up u
    WHERE u.head = '00000000-0000-0000-0000-000000000000'::uuid
    RETURNING 1
), settled_rows AS NOT MATERIALIZED (
    -- Each row's status: a superseded event's rows are cancelled; a keyed
    -- row is in line only as its line's head (named above), else held; the
    -- rest as decided.
    SELECT d.*,
           CASE WHEN d.superseded_by IS NOT NULL THEN 'cancelled'
                WHEN d.ordering_key IS NOT NULL
                     AND d.id NOT IN (SELECT u.head FROM line_up u) THEN 'held'
                WHEN d.claim THEN 'sending'
                ELSE 'pending' END::postbox.delivery_status AS status
    FROM decided d
), inserted AS (
    INSERT INTO postbox.deliveries (id, webhook_id, event_id, event_type, status, attempts,
                                    next_attempt_at, lease_expires_at, created_at, updated_at,
                                    ordering_key, ordering_seq, error_message, completed_at)
    SELECT d.id, d.webhook_id, d.event_id, d.event_type,
           d.status,
           CASE WHEN d.status = 'sending' THEN 1 ELSE 0 END,
           -- A batched webhook's delivery is due when its batch must go at
           -- the latest: maxWaitMs after the fan-out (sooner if it fills).
           $2::timestamptz + make_interval(secs => coalesce(d.batch_max_wait_ms, 0) / 1000.0),
           -- The lease starts when the row is written: time the statement
           -- waited (a lock) does not eat it.
           CASE WHEN d.status = 'sending' THEN $2::timestamptz + (clock_timestamp() - statement_timestamp()) + make_interval(secs => $5) END,
           $2, $2,
           d.ordering_key, d.ordering_seq,
           CASE WHEN d.status = 'cancelled' THEN 'superseded by event ' || d.superseded_by END,
           CASE WHEN d.status = 'cancelled' THEN $2::timestamptz END
    FROM settled_rows d
    ON CONFLICT (event_id, webhook_id) DO NOTHING
    RETURNING id, webhook_id, event_id, status, lease_expires_at, ordering_key
)
SELECT (SELECT count(*) FROM marked) AS events,
       (SELECT count(*) FROM progress) AS partial,
       (SELECT count(*) FROM inserted) AS deliveries,
       (SELECT count(*) FROM inserted i
         WHERE i.status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM busy b WHERE b.webhook_id = i.webhook_id AND b.room <= 0)) AS queued,
       (SELECT min(q.next_attempt_at) FROM postbox.deliveries q
         WHERE q.status IN ('pending', 'retrying')
           AND NOT (SELECT paused FROM postbox.queue_state)) AS next_due,
       CASE WHEN pg_try_advisory_lock(7138400190000001) THEN pg_advisory_unlock(7138400190000001) ELSE false END AS barrier_clear,
       -- Ordered delivery: lines wait in ordering_dirty for the promotion pass.
       EXISTS (SELECT 1 FROM postbox.ordering_dirty) OR EXISTS (SELECT 1 FROM line_lost) AS lines_dirty,
       c.*
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT i.id, i.webhook_id, i.event_id, i.lease_expires_at, e.event_type, e.payload::text AS payload,
           e.created_at AS event_created_at, i.ordering_key, w.ordering_policy, w.url, w.secret,
           CASE WHEN w.previous_secret_expires_at > $2 THEN w.previous_secret END AS previous_secret,
           w.headers, w.max_retries, w.retry_delay_seconds, w.template, w.retry_schedule,
           w.max_in_flight IS NOT NULL AS in_flight_limited
    FROM inserted i
    JOIN postbox.events e ON e.id = i.event_id
    JOIN postbox.webhooks w ON w.id = i.webhook_id
    WHERE i.status = 'sending'
) AS c ON true
