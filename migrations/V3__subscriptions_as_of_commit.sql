-- V3: subscriptions as of the event's commit, producers in two-phase commit,
-- and fan-out in bounded steps.
-- Forward-only: never edit this file once it has landed; add V4__... instead.

-- Which transaction wrote each event (set by the trigger below), so that
-- fan-out can tell whether the event committed before a webhook changed.
-- NULL for events written before this migration: they committed before any
-- recorded change.
ALTER TABLE postbox.events ADD COLUMN txid xid8;
-- Fan-out of an event with more matching webhooks than one statement's share
-- goes in steps: the last webhook id done so far (webhooks are taken in id
-- order); fanout_pending stays true until the last step.
ALTER TABLE postbox.events ADD COLUMN fanout_cursor uuid;

COMMENT ON COLUMN postbox.events.txid IS
    'The producer''s transaction id (pg_current_xact_id()), set by events_before_insert.';
COMMENT ON COLUMN postbox.events.fanout_cursor IS
    'While fan-out is in progress: the last webhook id (in id order) already fanned out.';

-- A webhook's subscriptions page by id: fan-out's cursor (owner, then id).
CREATE INDEX webhooks_owner_fanout_idx ON postbox.webhooks (owner_id, id);

-- One row per committed change of a webhook's subscription (created active,
-- switched on or off, event types or owner changed), holding the state it
-- had BEFORE the change and the snapshot taken when the change committed.
-- An event E and a change c: E committed before c exactly when E's txid is
-- visible in c.snapshot. For E, webhook W is subscribed as W was before the
-- earliest such change of W; with none, as W is now. Rows are kept while an
-- event still waiting for fan-out may need them
-- (sql/webhook_subscription_change_prune.sql removes the rest).
CREATE TABLE postbox.webhook_subscription_changes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id        uuid NOT NULL REFERENCES postbox.webhooks (id) ON DELETE CASCADE,
    -- pg_current_snapshot() at the change's commit (a deferred trigger).
    snapshot          pg_snapshot NOT NULL,
    -- The owner after the change, and the subscription before it.
    owner_id          text NOT NULL,
    prior_owner_id    text NOT NULL,
    prior_active      boolean NOT NULL,
    prior_event_types text[] NOT NULL,
    -- clock_timestamp() at the change's commit: every event committed before
    -- it has created_at <= changed_at (the prune's index range).
    changed_at        timestamptz NOT NULL
);

-- A webhook's changes in order (fan-out's lookup, the cascade).
CREATE INDEX webhook_subscription_changes_webhook_idx
    ON postbox.webhook_subscription_changes (webhook_id, id);
-- Changes of the owners in a fan-out batch, before or after the change.
CREATE INDEX webhook_subscription_changes_owner_idx
    ON postbox.webhook_subscription_changes (owner_id);
CREATE INDEX webhook_subscription_changes_prior_owner_idx
    ON postbox.webhook_subscription_changes (prior_owner_id);

-- Records a change of subscription. Runs as a deferred constraint trigger,
-- at COMMIT (or PREPARE TRANSACTION), so that the snapshot is taken as late
-- as possible: an event committed while the changing transaction was still
-- open counts as committed before the change. OLD and NEW are the row as this
-- update left it; an insert counts as a change from "inactive".
CREATE FUNCTION postbox.webhooks_subscription_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Deleted later in the same transaction: nothing to remember.
    IF NOT EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = NEW.id) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO postbox.webhook_subscription_changes
            (webhook_id, snapshot, owner_id, prior_owner_id, prior_active, prior_event_types, changed_at)
        VALUES (NEW.id, pg_current_snapshot(), NEW.owner_id, NEW.owner_id, false, NEW.event_types,
                clock_timestamp());
    ELSE
        INSERT INTO postbox.webhook_subscription_changes
            (webhook_id, snapshot, owner_id, prior_owner_id, prior_active, prior_event_types, changed_at)
        VALUES (NEW.id, pg_current_snapshot(), NEW.owner_id, OLD.owner_id, OLD.active, OLD.event_types,
                clock_timestamp());
    END IF;
    RETURN NULL;
END
$$;

-- Only changes that can change who receives what: a webhook that is inactive
-- both before and after receives nothing either way.
CREATE CONSTRAINT TRIGGER webhooks_subscription_inserted
    AFTER INSERT ON postbox.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.active)
    EXECUTE FUNCTION postbox.webhooks_subscription_changed();

CREATE CONSTRAINT TRIGGER webhooks_subscription_updated
    AFTER UPDATE OF active, event_types, owner_id ON postbox.webhooks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.active OR NEW.active)
                       AND (OLD.active, OLD.event_types, OLD.owner_id)
                           IS DISTINCT FROM (NEW.active, NEW.event_types, NEW.owner_id))
    EXECUTE FUNCTION postbox.webhooks_subscription_changed();

-- The outbox trigger of V1, plus two things:
-- - it records the producer's transaction id (events.txid);
-- - a producer that will PREPARE TRANSACTION (XA/JTA, two-phase commit)
--   sets postbox.notify = off (connection option, SET, or SET LOCAL): the
--   trigger then sends no NOTIFY (PREPARE refuses a transaction that sent
--   one) and takes no wake-up lock (a prepared transaction would hold it
--   until COMMIT PREPARED); dispatchers find the event by their poll
--   (POSTBOX_POLL_INTERVAL). docs/INTEGRATION.md has the options.
--
-- Wake-up protocol (no lost wake-ups): a producer takes a shared advisory lock
-- (held until its commit) before it reads dispatcher_waiting. A dispatcher
-- that goes idle first commits dispatcher_waiting = true, then takes and drops
-- the exclusive lock, which waits out every producer that may have read the
-- old value, then looks for work once more before it sleeps.
CREATE OR REPLACE FUNCTION postbox.events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    known boolean;
    waiting boolean;
    notify boolean;
BEGIN
    IF NEW.payload IS NULL OR jsonb_typeof(NEW.payload) <> 'object' THEN
        RAISE EXCEPTION 'postbox: the payload of a % event must be a JSON object, not %',
            NEW.event_type, coalesce(jsonb_typeof(NEW.payload), 'null')
            USING ERRCODE = '22023', HINT = 'Wrap the value in an object, e.g. {"value": ...}.';
    END IF;
    IF NEW.owner_id IS NULL OR NEW.owner_id = '' THEN
        RAISE EXCEPTION 'postbox: owner_id must not be empty' USING ERRCODE = '22023';
    END IF;
    -- The text form, as endpoints receive it: the stored size says little
    -- (a number such as 1e100000 is a few bytes stored, 100 KB as text).
    IF octet_length(NEW.payload::text) > 1048576 THEN
        RAISE EXCEPTION 'postbox: the payload of a % event is % bytes; the limit is 1 MiB (1048576 bytes)',
            NEW.event_type, octet_length(NEW.payload::text)
            USING ERRCODE = '54000', HINT = 'Send a reference (an id or a URL) instead of the data.';
    END IF;
    NEW.txid := pg_current_xact_id();
    notify := lower(coalesce(current_setting('postbox.notify', true), ''))
              NOT IN ('off', 'false', 'no', '0');
    -- The lock first, then one query (a fresh snapshot) for the type and the flag.
    IF notify THEN
        PERFORM pg_advisory_xact_lock_shared(7138400190000001);
    END IF;
    SELECT EXISTS (SELECT 1 FROM postbox.event_types t WHERE t.name = NEW.event_type),
           q.dispatcher_waiting
      INTO known, waiting
      FROM postbox.queue_state q;
    IF NOT known THEN
        RAISE EXCEPTION 'postbox: unknown event type "%"', NEW.event_type
            USING ERRCODE = '22023',
                  HINT = 'Add it first: INSERT INTO postbox.event_types (name, description) VALUES (...).';
    END IF;
    -- Only READ COMMITTED reads the flag as of now; a REPEATABLE READ or
    -- SERIALIZABLE producer may hold an older snapshot, so it always notifies.
    IF notify AND (waiting OR current_setting('transaction_isolation') <> 'read committed') THEN
        PERFORM pg_notify('postbox_wakeup', '');
    END IF;
    RETURN NEW;
END
$$;
