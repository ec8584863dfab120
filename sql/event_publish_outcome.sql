-- event_publish_outcome: publishes one event for the CLI and the API, as
-- postbox.publish() does (the same INSERT, through the same triggers), and
-- says whether it was new. $1 type, $2 payload, $3 owner, $4 idempotency key
-- (nullable), $5 ordering key (nullable), $6 supersede (needs $5; NULL:
-- false). Answers id, duplicate (the key was already used: nothing was
-- added, id is the first event's) and same_content (the stored event has this
-- type and a jsonb-equal payload; true when new). A repeated key inserts no
-- row (events_before_insert_admit) and takes no ordering number; when the
-- first event committed while this statement waited for it, the statement's
-- snapshot is older than that event and no row comes back: the caller runs
-- it again. Locks the new row only (and, for an idempotency key, the pair's
-- advisory lock; for an ordering key, that key's advisory lock until the
-- transaction ends, events_before_insert_order; with supersede, the key's
-- earlier undelivered deliveries of the type, events_after_insert_supersede);
-- the repeat is found through the unique index events_idempotency_idx.
WITH new AS (
    INSERT INTO postbox.events (event_type, owner_id, payload, idempotency_key, ordering_key, supersede)
    VALUES ($1, $3, $2, $4, $5, coalesce($6::boolean, false))
    ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT id, false AS duplicate, true AS same_content FROM new
UNION ALL
SELECT e.id, true, e.event_type = $1 AND e.payload = $2
FROM postbox.events e
WHERE NOT EXISTS (SELECT 1 FROM new) AND e.owner_id = $3 AND e.idempotency_key = $4
