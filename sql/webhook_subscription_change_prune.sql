-- webhook_subscription_change_prune: deletes up to $1 recorded subscription
-- changes (postbox.webhook_subscription_changes) that no event can need any
-- more: no event still waiting for fan-out (fanout_pending, partial fan-outs
-- included) committed before the change (its txid visible in the change's
-- snapshot). Events committed later, or not committed yet, use the webhook's
-- state after the change, so the row is no longer read. Oldest change first.
-- Returns the number of rows deleted; run again until it deletes fewer.
--
-- An event committed before a change has created_at <= changed_at (created_at
-- is its transaction's start, changed_at the change's commit), so each probe
-- reads events_fanout_pending_idx from the oldest pending event up to
-- changed_at and stops at the first that needs the change: a short range
-- (in the usual case the first entry decides). Locks only the rows it
-- deletes, SKIP LOCKED; fan-out never locks these rows.
WITH doomed AS (
    SELECT c.id
    FROM postbox.webhook_subscription_changes c
    WHERE NOT EXISTS (
        SELECT 1
        FROM postbox.events e
        WHERE e.fanout_pending
          AND e.created_at <= c.changed_at
          AND coalesce(pg_visible_in_snapshot(e.txid, c.snapshot), true)
    )
    ORDER BY c.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM postbox.webhook_subscription_changes c
USING doomed
WHERE c.id = doomed.id
