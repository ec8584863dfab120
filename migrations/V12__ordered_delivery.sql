-- V12: ordered delivery per (webhook, ordering key), in commit order, and
-- superseding stale events (SPEC 7.2; docs/WEBHOOKS.md "Ordered delivery",
-- docs/STATE_MACHINE.md).
-- Forward-only: never edit this file once it has landed; add a new one instead.
--
-- The design in one paragraph. A keyed event takes a number from one global
-- sequence while it holds a transaction-scoped lock on its (owner, key), so
-- for one key the numbers follow commit order. Each delivery copies its
-- event's key and number. For each (webhook, key), the "line", at most one
-- delivery is in line (pending, sending or retrying); the others wait as
-- 'held', out of every claim index, and the line's row in
-- postbox.ordering_lines names the one in line. When it ends (delivered,
-- dead-lettered, cancelled; under skip_failed also when an attempt fails),
-- the dispatcher promotes the held delivery with the lowest number. Unkeyed
-- events never touch any of this.

-- Events ---------------------------------------------------------------------

-- Numbers in commit order per key (taken under the key's lock, below).
CREATE SEQUENCE postbox.events_ordering_seq AS bigint;

ALTER TABLE postbox.events
    ADD COLUMN ordering_key text,
    ADD COLUMN ordering_seq bigint,
    ADD COLUMN supersede boolean NOT NULL DEFAULT false,
    ADD COLUMN superseded_by uuid;

COMMENT ON COLUMN postbox.events.ordering_key IS
    'Per (webhook, ordering key) deliveries go one at a time in commit order; NULL: unordered';
COMMENT ON COLUMN postbox.events.ordering_seq IS
    'Commit order within (owner_id, ordering_key): set by the insert trigger under the key''s lock';
COMMENT ON COLUMN postbox.events.supersede IS
    'true cancels the key''s not-yet-delivered deliveries of the same event type (in this transaction)';
COMMENT ON COLUMN postbox.events.superseded_by IS
    'The newer event of the same key and type that superseded this one before its fan-out';

-- The fan-out holds a keyed event back while an earlier one of its key is
-- still waiting for its own fan-out; supersede finds the key's unfanned
-- events. Small: fan-out pending keyed events only.
CREATE INDEX events_ordering_pending_idx ON postbox.events (owner_id, ordering_key, ordering_seq)
    WHERE fanout_pending AND ordering_key IS NOT NULL;

-- Runs after events_before_insert and events_before_insert_admit (name
-- order), so a refused or repeated event takes no number and no lock.
--
-- Commit order: the transaction-scoped advisory lock on (owner, key) is held
-- until the producer commits or rolls back, and the number is taken after it
-- is granted, so of two producers of one key the second waits for the first
-- and gets the greater number: for one key, ordering_seq order is commit
-- order, at every isolation level (a sequence is not transactional). The cost
-- is that producers of one key take turns for the rest of their transaction;
-- producers of different keys never wait on each other (a hash collision of
-- two keys, 1 in 2^32, only makes them take turns). Publishing two keys in
-- one transaction: take them in the same order everywhere, or two producers
-- can deadlock (Postgres detects it and fails one).
CREATE FUNCTION postbox.events_before_insert_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.ordering_seq := NULL;
    NEW.superseded_by := NULL;
    NEW.supersede := coalesce(NEW.supersede, false);
    IF NEW.ordering_key IS NULL THEN
        IF NEW.supersede THEN
            RAISE EXCEPTION 'postbox: supersede needs an ordering key (it cancels that key''s earlier deliveries)'
                USING ERRCODE = '22023',
                      HINT = 'Pass ordering_key => ''...'' with supersede => true.';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.ordering_key = '' OR octet_length(NEW.ordering_key) > 256 THEN
        RAISE EXCEPTION 'postbox: an ordering key must be 1 to 256 bytes, not %', octet_length(NEW.ordering_key)
            USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(7138402, hashtext(NEW.owner_id || '/' || NEW.ordering_key));
    NEW.ordering_seq := nextval('postbox.events_ordering_seq');
    RETURN NEW;
END
$$;

-- Fires only for a row that asks for ordering (or sets a column the
-- trigger owns): an unkeyed publish pays no function call.
CREATE TRIGGER events_before_insert_order BEFORE INSERT ON postbox.events
    FOR EACH ROW
    WHEN (NEW.ordering_key IS NOT NULL OR NEW.supersede OR NEW.ordering_seq IS NOT NULL
          OR NEW.superseded_by IS NOT NULL)
    EXECUTE FUNCTION postbox.events_before_insert_order();

-- Deliveries -----------------------------------------------------------------

ALTER TABLE postbox.deliveries
    ADD COLUMN ordering_key text,
    ADD COLUMN ordering_seq bigint;

COMMENT ON COLUMN postbox.deliveries.ordering_key IS
    'The event''s ordering key (copied at fan-out); NULL: unordered';
COMMENT ON COLUMN postbox.deliveries.ordering_seq IS
    'The event''s ordering_seq while the delivery keeps its place in its key''s line; NULL once it left it (skip_failed after a failed attempt) or when unordered';

-- The held deliveries of each line, in commit order: what a promotion reads.
CREATE INDEX deliveries_held_idx ON postbox.deliveries (webhook_id, ordering_key, ordering_seq)
    WHERE status = 'held';
-- A key's deliveries not yet delivered, per webhook, for supersede (which
-- probes it once per webhook of the owner: a key common to many owners,
-- such as user_1, costs each owner only its own rows).
CREATE INDEX deliveries_ordering_open_idx ON postbox.deliveries (webhook_id, ordering_key, event_type)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'retrying', 'held');
-- Retention deletes cancelled deliveries with the successes (both final and
-- not dead letters): the successes' index takes both.
CREATE INDEX deliveries_finished_ok_idx ON postbox.deliveries (completed_at)
    WHERE status IN ('success', 'cancelled');
DROP INDEX postbox.deliveries_succeeded_idx;

-- Lines ----------------------------------------------------------------------

-- One row per (webhook, ordering key) that has a delivery in line: head is
-- that delivery. The line's lock is a transaction-scoped advisory lock
-- (class 7138403, the hash of webhook and key): the fan-out takes it before
-- it writes or reads the line's row, and whoever ends or replaces the head
-- takes it in an earlier statement of the transaction that promotes the
-- next (sql/ordering_lines_lock.sql, sql/delivery_promote_lines.sql), so a
-- promotion always sees every delivery held behind the head; all take it in
-- key order. Deleted when the line empties: the table holds the lines that
-- have work, not every key ever seen.
CREATE TABLE postbox.ordering_lines (
    webhook_id   uuid NOT NULL REFERENCES postbox.webhooks (id) ON DELETE CASCADE,
    ordering_key text NOT NULL,
    head         uuid NOT NULL,
    PRIMARY KEY (webhook_id, ordering_key)
);

-- Lines whose head may have ended outside the dispatcher (a producer's
-- supersede, a recover, a replay, a retry, a lost line found by
-- maintenance): the dispatcher's promotion pass takes them (DELETE ...
-- SKIP LOCKED, in id order) and promotes. Transient. No unique key on the
-- line on purpose: an insert never waits for another transaction's insert
-- of the same line (a producer's open transaction above all), and a line
-- queued twice is promoted twice, which changes nothing the second time.
CREATE TABLE postbox.ordering_dirty (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   uuid NOT NULL,
    ordering_key text NOT NULL
);

-- The maintenance check's cursor (sql/ordering_lines_check.sql): the last
-- line it walked; each run goes on from there and starts over at the end.
ALTER TABLE postbox.retention_state
    ADD COLUMN ordering_checked_webhook uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    ADD COLUMN ordering_checked_key text NOT NULL DEFAULT '';

-- A delivery sent again (a retry, a recover, a replay, a hand-made requeue)
-- goes back to the queue as 'pending', or, when it has an ordering key, to
-- its key's line as 'held' (never beside the line's head), with its
-- event's place in the line (kept: the delivery's own, when the event is
-- gone). The caller queues the line in ordering_dirty for promotion.
CREATE FUNCTION postbox.requeued_status(ordering_key text) RETURNS postbox.delivery_status
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN ordering_key IS NULL THEN 'pending' ELSE 'held' END::postbox.delivery_status
$$;

CREATE FUNCTION postbox.requeued_seq(ordering_key text, event_id uuid, kept bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN ordering_key IS NOT NULL
                THEN coalesce((SELECT e.ordering_seq FROM postbox.events e WHERE e.id = requeued_seq.event_id),
                              kept, 0) END
$$;

-- Webhooks -------------------------------------------------------------------

ALTER TABLE postbox.webhooks
    ADD COLUMN ordering_policy text NOT NULL DEFAULT 'block'
        CHECK (ordering_policy IN ('block', 'skip_failed'));

COMMENT ON COLUMN postbox.webhooks.ordering_policy IS
    'block: a failing delivery holds the later ones of its key until it is delivered or dead-lettered; skip_failed: a failed attempt lets the next go (the failed one retries out of line)';

-- Supersede ------------------------------------------------------------------

-- A keyed event published with supersede cancels, in the producer's
-- transaction, the key's earlier events and deliveries of the same type that
-- were not delivered yet: events still waiting for their fan-out are marked
-- superseded_by (the fan-out writes their deliveries as 'cancelled'), and
-- deliveries pending, retrying or held end as 'cancelled' with the reason.
-- A delivery in flight ('sending') is left to finish, and so is one a
-- lease rescue returned (retrying with its lease kept: its request may have
-- landed, and its late outcome still counts). A dead letter ('failed') is
-- final and stays one. Rolled back, nothing is cancelled. The lines that lost their head are queued in ordering_dirty for
-- the dispatcher's promotion (the producer never touches ordering_lines, so a
-- dispatcher never waits on a producer's transaction). Each statement of
-- this function takes a fresh snapshot: the deliveries step sees the rows of
-- a fan-out that the events step waited for.
CREATE FUNCTION postbox.events_after_insert_supersede() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE postbox.events e
    SET superseded_by = NEW.id
    WHERE e.owner_id = NEW.owner_id
      AND e.ordering_key = NEW.ordering_key
      AND e.fanout_pending
      AND e.ordering_seq < NEW.ordering_seq
      AND e.event_type = NEW.event_type
      AND e.superseded_by IS NULL;
    WITH cancelled AS (
        UPDATE postbox.deliveries d
        SET status = 'cancelled',
            error_message = 'superseded by event ' || NEW.id,
            completed_at = now(),
            updated_at = now(),
            lease_expires_at = NULL
        FROM postbox.webhooks w
        WHERE w.owner_id = NEW.owner_id
          AND d.webhook_id = w.id
          AND d.ordering_key = NEW.ordering_key
          AND d.event_type = NEW.event_type
          AND d.status IN ('pending', 'retrying', 'held')
          AND NOT (d.status = 'retrying' AND d.lease_expires_at IS NOT NULL)
          AND d.event_id <> NEW.id
        RETURNING d.webhook_id, d.ordering_key
    )
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT DISTINCT c.webhook_id, c.ordering_key FROM cancelled c;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_after_insert_supersede AFTER INSERT ON postbox.events
    FOR EACH ROW WHEN (NEW.supersede) EXECUTE FUNCTION postbox.events_after_insert_supersede();

-- publish --------------------------------------------------------------------

DROP FUNCTION postbox.publish(text, jsonb, text, text);

CREATE FUNCTION postbox.publish(
    event_type text, payload jsonb, owner_id text, idempotency_key text DEFAULT NULL,
    ordering_key text DEFAULT NULL, supersede boolean DEFAULT false
) RETURNS uuid
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id uuid;
BEGIN
    IF idempotency_key IS NULL THEN
        INSERT INTO postbox.events (event_type, owner_id, payload, ordering_key, supersede)
        VALUES (publish.event_type, publish.owner_id, publish.payload,
                publish.ordering_key, coalesce(publish.supersede, false))
        RETURNING id INTO new_id;
        RETURN new_id;
    END IF;
    INSERT INTO postbox.events (event_type, owner_id, payload, idempotency_key, ordering_key, supersede)
    VALUES (publish.event_type, publish.owner_id, publish.payload, publish.idempotency_key,
            publish.ordering_key, coalesce(publish.supersede, false))
    ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO new_id;
    -- A repeated key inserts nothing: answer the first event's id.
    IF new_id IS NULL THEN
        SELECT e.id INTO new_id FROM postbox.events e
        WHERE e.owner_id = publish.owner_id AND e.idempotency_key = publish.idempotency_key;
    END IF;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION postbox.publish(text, jsonb, text, text, text, boolean) IS
    'Publish one event inside the caller''s transaction; returns its id (the first event''s id for a repeated idempotency key, whatever payload the repeat carries). ordering_key: deliveries of one key go one at a time per webhook, in commit order. supersede (needs ordering_key): cancels the key''s not-yet-delivered deliveries of the same type. A plain INSERT of a repeated key inserts nothing.';

-- Stats: held deliveries are waiting, like pending ones.
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
           coalesce(sum(u.n) FILTER (WHERE u.status IN ('pending', 'sending', 'held')), 0)::bigint AS pending,
           coalesce(sum(u.n) FILTER (WHERE u.status = 'retrying'), 0)::bigint AS retrying
    FROM postbox.delivery_totals u
    WHERE u.webhook_id = w.id
) c
LEFT JOIN postbox.webhook_activity a ON a.webhook_id = w.id;
