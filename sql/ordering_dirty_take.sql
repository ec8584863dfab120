-- ordering_dirty_take: takes up to $1 lines queued in postbox.ordering_dirty
-- (by a producer's supersede, a recover, a replay, a retry, a claim that
-- dead-lettered a keyed delivery, or a fan-out that found a lost line) and
-- returns them; the caller locks their rows and promotes in the same
-- transaction (store::delivery). Rows another promotion pass holds are
-- skipped (SKIP LOCKED), and a line queued again while this transaction
-- runs waits for it to end, then is queued anew. Primary-key order.
DELETE FROM postbox.ordering_dirty d
WHERE (d.webhook_id, d.ordering_key) IN (
    SELECT q.webhook_id, q.ordering_key
    FROM postbox.ordering_dirty q
    ORDER BY q.webhook_id, q.ordering_key
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING d.webhook_id, d.ordering_key
