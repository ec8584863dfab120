-- Postbox schema: the outbox (events), its fan-out (deliveries), the audit trail
-- (delivery_attempts), endpoints (webhooks), the event catalogue and the inbox.
-- Forward-only: never edit this file once it has landed; add V2__... instead.

CREATE SCHEMA IF NOT EXISTS postbox;

CREATE TYPE postbox.delivery_status AS ENUM ('pending', 'sending', 'success', 'failed', 'retrying');

-- The event catalogue. Publishing an unknown type is refused.
CREATE TABLE postbox.event_types (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO postbox.event_types (name, description) VALUES
    ('project.created', 'A project was created'),
    ('project.updated', 'A project was updated'),
    ('project.deleted', 'A project was deleted'),
    ('session.started', 'A session started'),
    ('session.ended', 'A session ended'),
    ('session.message', 'A message was posted in a session'),
    ('session.paused', 'A session was paused'),
    ('session.resumed', 'A session was resumed'),
    ('recording.completed', 'A recording finished processing'),
    ('recording.failed', 'A recording failed to process'),
    ('agent.connected', 'An agent connected'),
    ('agent.disconnected', 'An agent disconnected'),
    ('agent.status_changed', 'An agent changed status'),
    ('subscription.created', 'A subscription was created'),
    ('subscription.updated', 'A subscription was updated'),
    ('subscription.cancelled', 'A subscription was cancelled'),
    ('payment.succeeded', 'A payment succeeded'),
    ('payment.failed', 'A payment failed'),
    ('storage.quota_warning', 'Storage use passed the warning threshold'),
    ('storage.quota_exceeded', 'Storage use passed the quota'),
    ('user.created', 'A user was created'),
    ('user.updated', 'A user was updated'),
    ('user.deleted', 'A user was deleted'),
    ('webhook.test', 'A test event sent on request to check an endpoint');

-- Time-ordered ids (UUID version 7: 48 bits of unix milliseconds, then random
-- bits) for the append-heavy tables: new rows land at the right edge of the
-- primary-key index instead of on random pages, which keeps inserts cheap at
-- any table size. PostgreSQL 15 has no built-in uuidv7().
CREATE FUNCTION postbox.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- A fresh signing secret: whsec_ + base64 of 32 bytes from pg_strong_random
-- (two v4 UUIDs, 244 random bits; no extension needed). The API makes its own
-- secrets with the operating system's CSPRNG.
CREATE FUNCTION postbox.generate_secret() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64')
$$;

CREATE TABLE postbox.webhooks (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id             text NOT NULL CHECK (owner_id <> ''),
    name                 text NOT NULL DEFAULT 'webhook',
    description          text,
    url                  text NOT NULL CHECK (url ~* '^https?://'),
    secret               text NOT NULL DEFAULT postbox.generate_secret() CHECK (secret LIKE 'whsec\_%'),
    -- Secret rotation: the previous secret keeps signing until previous_secret_expires_at.
    previous_secret      text,
    previous_secret_expires_at timestamptz,
    event_types          text[] NOT NULL CHECK (cardinality(event_types) > 0),
    active               boolean NOT NULL DEFAULT true,
    verified             boolean NOT NULL DEFAULT false,
    headers              jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
    max_retries          integer NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
    retry_delay_seconds  integer NOT NULL DEFAULT 60 CHECK (retry_delay_seconds BETWEEN 0 AND 86400),
    -- Why and when Postbox turned the webhook off (410 Gone, failing too long).
    disabled_at          timestamptz,
    disabled_reason      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_owner_idx ON postbox.webhooks (owner_id, created_at);

-- The outbox. Producers insert here inside their own transactions.
CREATE TABLE postbox.events (
    id              uuid PRIMARY KEY DEFAULT postbox.uuid_v7(),
    event_type      text NOT NULL,
    owner_id        text NOT NULL,
    payload         jsonb NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- True until a dispatcher has turned the event into deliveries.
    fanout_pending  boolean NOT NULL DEFAULT true
);

CREATE UNIQUE INDEX events_idempotency_idx ON postbox.events (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Holds only the events still waiting for fan-out: the dispatcher's scan is as
-- small as the backlog, whatever the table's size.
CREATE INDEX events_fanout_pending_idx ON postbox.events (created_at) WHERE fanout_pending;
CREATE INDEX events_created_idx ON postbox.events (created_at);

CREATE TABLE postbox.deliveries (
    id               uuid PRIMARY KEY DEFAULT postbox.uuid_v7(),
    webhook_id       uuid NOT NULL REFERENCES postbox.webhooks (id) ON DELETE CASCADE,
    -- No foreign key to events: fan-out creates deliveries from event rows it
    -- holds locked, retention removes an event only when no delivery needs
    -- it, and the key check cost about 10 us per delivery. Delete deliveries
    -- before events when purging by hand (docs/OPERATIONS.md).
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    status           postbox.delivery_status NOT NULL DEFAULT 'pending',
    -- Attempts started so far. Incremented by each claim: the claim's fencing token.
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- While status = 'sending': the claim is void after this instant.
    lease_expires_at timestamptz,
    response_code    integer,
    response_body    text,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT deliveries_event_webhook_key UNIQUE (event_id, webhook_id)
);

-- Due work only: pending and retrying rows, by due time.
CREATE INDEX deliveries_due_idx ON postbox.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
-- Claimed rows, by lease expiry: the rescue scan.
CREATE INDEX deliveries_lease_idx ON postbox.deliveries (lease_expires_at)
    WHERE status = 'sending';
-- Finished rows, by completion: the retention scan.
CREATE INDEX deliveries_finished_idx ON postbox.deliveries (completed_at)
    WHERE status IN ('success', 'failed');
-- A webhook's history, newest first.
CREATE INDEX deliveries_webhook_idx ON postbox.deliveries (webhook_id, created_at DESC);

CREATE TABLE postbox.delivery_attempts (
    delivery_id   uuid NOT NULL REFERENCES postbox.deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    response_code integer,
    response_body text,
    error_message text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Incoming webhooks (Stripe, Clerk), stored once per (source, external_id).
CREATE TABLE postbox.inbox (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source       text NOT NULL,
    external_id  text NOT NULL,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    CONSTRAINT inbox_source_external_key UNIQUE (source, external_id)
);
CREATE INDEX inbox_unprocessed_idx ON postbox.inbox (received_at) WHERE processed_at IS NULL;

-- One row of queue-wide state shared by every dispatcher.
CREATE TABLE postbox.queue_state (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Pause: no dispatcher claims while true.
    paused            boolean NOT NULL DEFAULT false,
    paused_at         timestamptz,
    -- True while some dispatcher is idle and waiting for a NOTIFY. Producers
    -- notify only then, so busy dispatchers cost producers no NOTIFY.
    dispatcher_waiting boolean NOT NULL DEFAULT true
);
INSERT INTO postbox.queue_state DEFAULT VALUES;

-- Validation and wake-up for every insert into the outbox, whether it comes
-- through postbox.publish() or a plain INSERT.
--
-- Wake-up protocol (no lost wake-ups): a producer takes a shared advisory lock
-- (held until its commit) before it reads dispatcher_waiting. A dispatcher
-- that goes idle first commits dispatcher_waiting = true, then takes and drops
-- the exclusive lock, which waits out every producer that may have read the
-- old value, then looks for work once more before it sleeps.
CREATE FUNCTION postbox.events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    known boolean;
    waiting boolean;
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
    -- The lock first, then one query (a fresh snapshot) for the type and the flag.
    PERFORM pg_advisory_xact_lock_shared(7138400190000001);
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
    IF waiting OR current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM pg_notify('postbox_wakeup', '');
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_before_insert BEFORE INSERT ON postbox.events
    FOR EACH ROW EXECUTE FUNCTION postbox.events_before_insert();

CREATE FUNCTION postbox.publish(
    event_type text, payload jsonb, owner_id text, idempotency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id uuid;
BEGIN
    IF idempotency_key IS NULL THEN
        INSERT INTO postbox.events (event_type, owner_id, payload)
        VALUES (publish.event_type, publish.owner_id, publish.payload)
        RETURNING id INTO new_id;
        RETURN new_id;
    END IF;
    INSERT INTO postbox.events (event_type, owner_id, payload, idempotency_key)
    VALUES (publish.event_type, publish.owner_id, publish.payload, publish.idempotency_key)
    ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        SELECT e.id INTO new_id FROM postbox.events e
        WHERE e.owner_id = publish.owner_id AND e.idempotency_key = publish.idempotency_key;
    END IF;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION postbox.publish(text, jsonb, text, text) IS
    'Publish one event inside the caller''s transaction; returns its id (the first event''s id for a repeated idempotency key).';

-- Per-webhook totals for psql users and the API.
CREATE VIEW postbox.webhook_stats AS
SELECT w.id AS webhook_id,
       count(d.id) AS total,
       count(d.id) FILTER (WHERE d.status = 'success') AS success,
       count(d.id) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.id) FILTER (WHERE d.status IN ('pending', 'sending')) AS pending,
       count(d.id) FILTER (WHERE d.status = 'retrying') AS retrying,
       CASE WHEN count(d.id) FILTER (WHERE d.status IN ('success', 'failed')) = 0 THEN NULL
            ELSE round(100.0 * count(d.id) FILTER (WHERE d.status = 'success')
                       / count(d.id) FILTER (WHERE d.status IN ('success', 'failed')), 2)
       END AS success_rate,
       max(d.updated_at) FILTER (WHERE d.attempts > 0) AS last_delivery_at
FROM postbox.webhooks w
LEFT JOIN postbox.deliveries d ON d.webhook_id = w.id
GROUP BY w.id;

-- Queue-wide counts. While the queue is paused, due work counts as paused
-- instead of waiting.
CREATE VIEW postbox.queue_stats AS
WITH s AS (SELECT paused FROM postbox.queue_state),
c AS (
    SELECT count(*) FILTER (WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()) AS due,
           count(*) FILTER (WHERE status = 'sending') AS active,
           count(*) FILTER (WHERE status = 'success') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status IN ('pending', 'retrying') AND next_attempt_at > now()) AS delayed
    FROM postbox.deliveries
)
SELECT CASE WHEN s.paused THEN 0 ELSE c.due END AS waiting,
       c.active, c.completed, c.failed, c.delayed,
       CASE WHEN s.paused THEN c.due ELSE 0 END AS paused
FROM c, s;
