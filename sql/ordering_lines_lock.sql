-- ordering_lines_lock: takes the lock of each (webhook, ordering key) line
-- $1[i], $2[i] until the transaction ends, in key order: a transaction-scoped
-- advisory lock on the line, which exists whether or not the line has a row
-- in postbox.ordering_lines. Ordered delivery (V12): the first statement of
-- the promotion pass's transaction, which then promotes with
-- sql/delivery_promote_lines.sql (the completion takes the same locks inside
-- sql/delivery_complete_many.sql). The fan-out takes the same lock, in the
-- same order, before it reads or writes a line's row, and holds it until it
-- commits: the promotion, a later statement, then sees every delivery it
-- held; no two statements lock lines in different orders (no deadlock),
-- also for a line whose row a promotion inserts; and every writer of a
-- line's row holds its lock, so the row itself is not locked. Waits only on
-- dispatcher statements (producers never take these locks). Returns how
-- many lines it locked.
SELECT count(x.locked) AS locked
FROM (
    SELECT pg_advisory_xact_lock(7138403, hashtext(u.webhook_id::text || '/' || u.ordering_key)) IS NULL AS locked
    FROM (SELECT DISTINCT v.webhook_id, v.ordering_key
          FROM unnest($1::uuid[], $2::text[]) AS v(webhook_id, ordering_key)
          ORDER BY v.webhook_id, v.ordering_key) u
) x
