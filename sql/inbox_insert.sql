-- inbox_insert: stores one verified incoming webhook, once.
-- $1 source ('stripe' | 'clerk'), $2 external_id (Stripe event id / svix-id),
-- $3 event_type, $4 payload as the raw JSON text received (cast here, so that
-- numbers keep Postgres numeric precision instead of passing through f64), $5 received_at.
-- A replay of (source, external_id) inserts nothing (ON CONFLICT DO NOTHING on
-- the UNIQUE constraint inbox_source_external_key, whose index it relies on)
-- and sends no NOTIFY: pg_notify runs only for a row that was inserted, in the
-- same statement, so consumers LISTENing on postbox_inbox are woken at commit.
-- Locks: the new row only (a concurrent insert of the same key waits for the
-- first to commit, then does nothing).
-- Returns one row: inserted (bool).
WITH ins AS (
    INSERT INTO postbox.inbox (source, external_id, event_type, payload, received_at)
    VALUES ($1, $2, $3, $4::text::jsonb, $5)
    ON CONFLICT ON CONSTRAINT inbox_source_external_key DO NOTHING
    RETURNING source
), notified AS (
    SELECT pg_notify('postbox_inbox', ins.source) FROM ins
)
SELECT (SELECT count(*) FROM notified) > 0 AS inserted
