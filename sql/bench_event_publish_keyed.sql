-- bench_event_publish_keyed: one keyed event through the SQL interface, as
-- the ordering part's producers publish it inside their own transactions:
-- $1 type, $2 payload, $3 owner, $4 ordering key. Takes the key's
-- transaction-scoped advisory lock (V12's trigger) until the caller commits
-- or rolls back.
SELECT postbox.publish($1, $2, $3, NULL, $4) AS id
