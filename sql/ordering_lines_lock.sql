-- ordering_lines_lock: takes the lock of each (webhook, ordering key) line
-- $1[i], $2[i] until the transaction ends, in key order: a transaction-scoped
-- advisory lock on the line (which exists whether or not the line has a row
-- in postbox.ordering_lines), then the row itself when there is one.
-- Ordered delivery (V12): the first statement of a transaction that frees
-- lines (outcomes that end their head, the promotion pass) and then promotes
-- their next deliveries with sql/delivery_promote_lines.sql. The fan-out
-- takes the same advisory lock, in the same order, before it reads or
-- writes a line's row, and holds it until it commits: the promotion, a later
-- statement, then sees every delivery it held; and no two statements lock
-- lines in different orders (no deadlock), also for a line whose row a
-- promotion inserts. Waits only on dispatcher statements (producers never
-- take these locks). Returns how many lines it locked.
WITH line AS MATERIALIZED (
    SELECT u.webhook_id, u.ordering_key,
           pg_advisory_xact_lock(7138403, hashtext(u.webhook_id::text || '/' || u.ordering_key)) AS locked
    FROM (SELECT DISTINCT v.webhook_id, v.ordering_key
          FROM unnest($1::uuid[], $2::text[]) AS v(webhook_id, ordering_key)
          ORDER BY v.webhook_id, v.ordering_key) u
)
SELECT count(*) AS locked
FROM (
    SELECT l.webhook_id
    FROM line u
    JOIN postbox.ordering_lines l
      ON l.webhook_id = u.webhook_id AND l.ordering_key = u.ordering_key
    ORDER BY l.webhook_id, l.ordering_key
    FOR UPDATE OF l
) x
