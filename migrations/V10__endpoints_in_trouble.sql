-- V10: endpoints in trouble (SPEC 7.1): pause, per-webhook limits that hold
-- across dispatchers, explicit retry schedules, the circuit breaker, the
-- owners' operational notifications, and recover/replay jobs.
-- Forward-only: never edit this file once it has landed; add a new one instead.

-- The owner's settings (API fields paused, rateLimit, maxInFlight,
-- retrySchedule). NULL limits mean none (max_in_flight: the dispatcher's
-- POSTBOX_ENDPOINT_CONCURRENCY per dispatcher, as before).
ALTER TABLE postbox.webhooks
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN rate_limit integer CHECK (rate_limit BETWEEN 1 AND 10000),
    ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 10000),
    ADD COLUMN retry_schedule integer[] CHECK (
        retry_schedule IS NULL
        OR (array_ndims(retry_schedule) = 1
            AND cardinality(retry_schedule) BETWEEN 1 AND 20
            AND array_position(retry_schedule, NULL) IS NULL
            AND 1 <= ALL (retry_schedule)
            AND 604800 >= ALL (retry_schedule)));

COMMENT ON COLUMN postbox.webhooks.paused IS
    'true holds this webhook''s deliveries (not claimed, retry budget kept) until false';
COMMENT ON COLUMN postbox.webhooks.rate_limit IS
    'requests per second to this webhook across all dispatchers; NULL = no limit';
COMMENT ON COLUMN postbox.webhooks.max_in_flight IS
    'requests in flight to this webhook across all dispatchers; NULL = POSTBOX_ENDPOINT_CONCURRENCY per dispatcher';
COMMENT ON COLUMN postbox.webhooks.retry_schedule IS
    'seconds before each retry; when set it replaces max_retries/retry_delay_seconds';

-- The dispatchers' per-webhook state: the circuit breaker, the requests in
-- flight (a maintained counter), the token bucket of rate_limit and the
-- throttle of a 429/503. One row per webhook (created by the trigger below),
-- apart from postbox.webhooks so that the claim and the completer never lock
-- the row the API updates. Written only by sql/delivery_claim.sql (room,
-- probes) and sql/delivery_complete_many.sql (outcomes), row by row under
-- FOR NO KEY UPDATE SKIP LOCKED, and by sql/delivery_rescue_expired.sql.
CREATE TABLE postbox.webhook_state (
    webhook_id             uuid PRIMARY KEY REFERENCES postbox.webhooks (id) ON DELETE CASCADE,
    breaker_state          text NOT NULL DEFAULT 'closed'
                           CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    breaker_since          timestamptz,
    breaker_reason         text,
    -- Failed attempts since the last success (429 does not count: it is a
    -- throttle, not a failure).
    consecutive_failures   integer NOT NULL DEFAULT 0,
    -- While open: the wait before the next probe, doubled by each failed probe.
    probe_interval_seconds integer NOT NULL DEFAULT 0,
    -- While open: when the next probe may be claimed; while half_open: when
    -- the probe in flight counts as lost (its lease) and another may go.
    next_probe_at          timestamptz,
    last_success_at        timestamptz,
    last_failure_at        timestamptz,
    -- Requests in flight to a webhook with max_in_flight, claimed by any
    -- dispatcher and not yet completed or rescued. Kept only while
    -- max_in_flight is set (reset to 0 when it is cleared).
    in_flight              integer NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    -- Token bucket of rate_limit (capacity: one second of requests), as of
    -- tokens_at; NULL tokens_at: full.
    tokens                 double precision NOT NULL DEFAULT 0,
    tokens_at              timestamptz,
    -- AIMD: the rate in force (<= rate_limit); halved by a 429/503, one more
    -- per second per completion batch with a success. NULL: rate_limit.
    effective_rate         double precision,
    -- A 429/503's Retry-After: no claim for this webhook before it.
    throttled_until        timestamptz
);

COMMENT ON TABLE postbox.webhook_state IS
    'Per-webhook dispatch state: circuit breaker, in-flight counter, rate bucket (docs/WEBHOOKS.md, "Endpoints in trouble").';

INSERT INTO postbox.webhook_state (webhook_id) SELECT id FROM postbox.webhooks;

-- The /metrics gauges count webhooks in trouble through these (few entries).
CREATE INDEX webhook_state_breaker_idx ON postbox.webhook_state (breaker_state)
    WHERE breaker_state <> 'closed';
CREATE INDEX webhooks_paused_idx ON postbox.webhooks (id) WHERE paused;

-- Owners' operational events (SPEC 7.1): consumed with FOR UPDATE SKIP
-- LOCKED, processed_at set by the consumer (docs/INTEGRATION.md).
CREATE TABLE postbox.notifications (
    id           uuid PRIMARY KEY DEFAULT postbox.uuid_v7(),
    owner_id     text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('webhook.disabled', 'webhook.breaker_opened',
                                               'webhook.breaker_closed', 'delivery.dead_lettered')),
    webhook_id   uuid,
    delivery_id  uuid,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
-- What a consumer reads: one owner's unprocessed rows, oldest first.
CREATE INDEX notifications_unprocessed_idx ON postbox.notifications (owner_id, created_at)
    WHERE processed_at IS NULL;
-- What retention deletes: processed rows by age.
CREATE INDEX notifications_processed_idx ON postbox.notifications (processed_at)
    WHERE processed_at IS NOT NULL;

-- One NOTIFY per statement that adds notifications (never per row), with
-- the owner ids as payload when they fit.
CREATE FUNCTION postbox.notifications_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owners text;
BEGIN
    SELECT string_agg(DISTINCT n.owner_id, ',') INTO owners FROM new_rows n;
    IF owners IS NOT NULL THEN
        PERFORM pg_notify('postbox_notifications', CASE WHEN octet_length(owners) < 7900 THEN owners ELSE '' END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_notify AFTER INSERT ON postbox.notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postbox.notifications_notify();

-- A webhook gets its state row; turning it off (disabled_at set by the 410
-- answer or auto-disable) tells its owner; clearing max_in_flight forgets
-- the in-flight counter (kept only while a limit needs it).
CREATE FUNCTION postbox.webhooks_trouble_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO postbox.webhook_state (webhook_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    IF NEW.disabled_at IS NOT NULL AND OLD.disabled_at IS NULL THEN
        INSERT INTO postbox.notifications (owner_id, kind, webhook_id, detail, created_at)
        VALUES (NEW.owner_id, 'webhook.disabled', NEW.id,
                jsonb_build_object('reason', NEW.disabled_reason, 'disabledAt', NEW.disabled_at),
                NEW.disabled_at);
    END IF;
    IF NEW.max_in_flight IS NULL AND OLD.max_in_flight IS NOT NULL THEN
        UPDATE postbox.webhook_state SET in_flight = 0 WHERE webhook_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER webhooks_trouble_insert AFTER INSERT ON postbox.webhooks
    FOR EACH ROW EXECUTE FUNCTION postbox.webhooks_trouble_changes();
CREATE TRIGGER webhooks_trouble_update AFTER UPDATE OF disabled_at, max_in_flight ON postbox.webhooks
    FOR EACH ROW EXECUTE FUNCTION postbox.webhooks_trouble_changes();

-- Recover and replay (API routes and backfillSince), done in bounded
-- batches: each row is a job that sql/webhook_job_advance.sql moves forward
-- by one batch per call (the API's task, then any maintenance run), its
-- cursor the last (created_at, id) done.
CREATE TABLE postbox.webhook_jobs (
    id           uuid PRIMARY KEY DEFAULT postbox.uuid_v7(),
    webhook_id   uuid NOT NULL REFERENCES postbox.webhooks (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('recover', 'replay')),
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    event_types  text[],
    cursor_at    timestamptz NOT NULL DEFAULT '-infinity',
    cursor_id    uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    -- Deliveries requeued or created so far.
    done         bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX webhook_jobs_unfinished_idx ON postbox.webhook_jobs (created_at) WHERE finished_at IS NULL;
-- What retention deletes: finished jobs by age.
CREATE INDEX webhook_jobs_finished_idx ON postbox.webhook_jobs (finished_at) WHERE finished_at IS NOT NULL;

-- The state of every webhook in one query (SPEC 7.1). last_success_at and
-- last_failure_at: the newer of the dispatchers' state and the maintenance
-- rollup (webhook_activity).
CREATE VIEW postbox.webhook_health AS
SELECT w.id AS webhook_id,
       w.owner_id,
       coalesce(s.breaker_state, 'closed') AS breaker_state,
       s.breaker_since,
       s.breaker_reason,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures,
       greatest(s.last_success_at, a.last_success_at) AS last_success_at,
       greatest(s.last_failure_at, a.last_failure_at) AS last_failure_at,
       w.paused,
       w.active,
       w.disabled_at,
       w.disabled_reason,
       s.next_probe_at,
       w.rate_limit,
       s.effective_rate,
       w.max_in_flight,
       CASE WHEN w.max_in_flight IS NOT NULL THEN s.in_flight END AS in_flight,
       s.throttled_until
FROM postbox.webhooks w
LEFT JOIN postbox.webhook_state s ON s.webhook_id = w.id
LEFT JOIN postbox.webhook_activity a ON a.webhook_id = w.id;
