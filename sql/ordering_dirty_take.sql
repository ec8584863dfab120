-- ordering_dirty_take: takes up to $1 entries queued in postbox.ordering_dirty
-- (by a producer's supersede, a recover, a replay, a retry, a claim that
-- dead-lettered a keyed delivery, a fan-out that found a lost line, a
-- promotion that found a line busy, the maintenance check), oldest first,
-- and returns their lines, each once; the caller locks the lines and
-- promotes in the same transaction (store::delivery). Entries another
-- promotion pass holds are skipped (SKIP LOCKED); inserts never wait on this
-- (the table has no unique key on the line). Primary-key order.
WITH taken AS (
    DELETE FROM postbox.ordering_dirty d
    WHERE d.id = ANY (ARRAY(
        SELECT q.id
        FROM postbox.ordering_dirty q
        ORDER BY q.id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING d.webhook_id, d.ordering_key
)
SELECT DISTINCT t.webhook_id, t.ordering_key
FROM taken t
ORDER BY t.webhook_id, t.ordering_key
