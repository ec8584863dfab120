-- V7: retired event types, and a plain INSERT that treats a repeated
-- idempotency key as postbox.publish() does.

-- An event type retired by the admin API (DELETE /api/webhooks/events/{type})
-- or by SQL: new publishes are refused, events already stored and their
-- deliveries stay. NULL: open for publishing.
ALTER TABLE postbox.event_types ADD COLUMN retired_at timestamptz;

COMMENT ON COLUMN postbox.event_types.retired_at IS
    'When the type was retired: publishing it is refused from then on; stored events and their deliveries stay. NULL: open.';

-- Runs after events_before_insert (triggers of one event fire in name
-- order), so a bad payload or an unknown type is still refused first.
--
-- A retired type is refused. A repeated (owner_id, idempotency_key) inserts
-- nothing (the trigger returns NULL, so `INSERT ... RETURNING id` returns no
-- row) instead of failing with 23505 and aborting the producer's transaction.
-- Concurrent duplicates: the transaction-scoped advisory lock on the pair
-- makes the second producer wait for the first to commit or roll back; under
-- READ COMMITTED its check then sees the committed row and inserts nothing.
-- Under REPEATABLE READ or SERIALIZABLE its snapshot is older than that row,
-- so the unique index events_idempotency_idx still answers 23505, as for any
-- write conflict at those levels. The two-int advisory lock form has its own
-- key space, apart from the wake-up protocol's single bigint key.
CREATE FUNCTION postbox.events_before_insert_admit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM postbox.event_types t
               WHERE t.name = NEW.event_type AND t.retired_at IS NOT NULL) THEN
        RAISE EXCEPTION 'postbox: event type "%" is retired: it takes no new events', NEW.event_type
            USING ERRCODE = '22023',
                  HINT = 'Publish another type, or reopen it: UPDATE postbox.event_types SET retired_at = NULL WHERE name = ...';
    END IF;
    IF NEW.idempotency_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(7138401, hashtext(NEW.owner_id || '/' || NEW.idempotency_key));
        IF EXISTS (SELECT 1 FROM postbox.events e
                   WHERE e.owner_id = NEW.owner_id AND e.idempotency_key = NEW.idempotency_key) THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_before_insert_admit BEFORE INSERT ON postbox.events
    FOR EACH ROW EXECUTE FUNCTION postbox.events_before_insert_admit();

COMMENT ON FUNCTION postbox.publish(text, jsonb, text, text) IS
    'Publish one event inside the caller''s transaction; returns its id (the first event''s id for a repeated idempotency key, whatever payload the repeat carries: compare it with SELECT payload FROM postbox.events WHERE id = ...). A plain INSERT of a repeated key inserts nothing.';
