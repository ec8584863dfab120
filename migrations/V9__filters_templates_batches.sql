-- V9: payload filters, body templates and batched delivery (SPEC 7.3).

-- postbox.webhook_filter_problem(filter): why a filter is not valid, or NULL
-- when it is. A filter is NULL or an object with at most the keys
-- "contains" (an object: JSON containment, payload @> contains) and "path"
-- (a SQL/JSON path predicate: it must parse, use no variables, and be a
-- predicate, one that yields true, false or unknown, such as
-- `$.amount > 1000`; a plain path such as `$.amount` is refused, it would
-- never match). The API asks
-- it before writing (400 with the reason); the CHECK below raises it on
-- every write by SQL. Never raises itself.
CREATE FUNCTION postbox.webhook_filter_problem(filter jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    path jsonpath;
BEGIN
    IF filter IS NULL OR filter = 'null'::jsonb THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(filter) <> 'object' THEN
        RETURN 'must be an object with "contains" and/or "path"';
    END IF;
    IF filter - 'contains' - 'path' <> '{}'::jsonb THEN
        RETURN 'unknown key(s): only "contains" and "path" are allowed';
    END IF;
    IF filter ? 'contains' AND jsonb_typeof(filter->'contains') <> 'object' THEN
        RETURN '"contains" must be an object (matched by JSON containment: payload @> contains)';
    END IF;
    IF filter ? 'path' THEN
        IF jsonb_typeof(filter->'path') <> 'string' THEN
            RETURN '"path" must be a string (a SQL/JSON path predicate such as $.amount > 1000)';
        END IF;
        BEGIN
            path := (filter->>'path')::jsonpath;
        EXCEPTION WHEN OTHERS THEN
            RETURN '"path" is not a valid SQL/JSON path: ' || SQLERRM;
        END;
        -- A variable ($name) has no value in the fan-out, and a missing
        -- variable is an error `@@` does not suppress: one event would stop
        -- the fan-out. In the normalised text a variable reads $"name";
        -- string literals are masked first, so "$" in a literal is no match.
        IF regexp_replace(path::text, '"(\\.|[^"\\])*"', 'S', 'g') ~ '\$S' THEN
            RETURN '"path" must not use variables ($name): only $ (the payload) and literals';
        END IF;
        BEGIN
            -- A predicate answers true, false or NULL (unknown) on any
            -- document; a path that selects items raises here.
            PERFORM jsonb_path_match('{}'::jsonb, path);
        EXCEPTION WHEN OTHERS THEN
            RETURN '"path" must be a predicate that yields true or false (such as $.amount > 1000 or exists($.x)), not a path selecting items';
        END;
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION postbox.webhook_filter_problem(jsonb) IS
    'Why a webhook filter is not valid, or NULL when it is (or is NULL).';

-- postbox.webhook_template_problem(template): the shape of a template
-- ("slack", "discord", "teams" or {"body": "<jinja>"}), or NULL when it
-- fits. The Jinja syntax itself is checked by the API (400) and, for rows
-- written by SQL, at the first attempt, which then fails with the reason.
CREATE FUNCTION postbox.webhook_template_problem(template jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN template IS NULL OR template = 'null'::jsonb THEN NULL
        WHEN template IN ('"slack"'::jsonb, '"discord"'::jsonb, '"teams"'::jsonb) THEN NULL
        WHEN jsonb_typeof(template) = 'object'
             AND jsonb_typeof(template->'body') = 'string'
             AND template - 'body' = '{}'::jsonb THEN NULL
        ELSE 'must be "slack", "discord", "teams" or {"body": "<template>"}'
    END
$$;

-- postbox.webhook_batch_problem(batch): {"maxEvents": 1-1000, "maxWaitMs":
-- 0-60000}, both integers, both required; NULL when it fits.
CREATE FUNCTION postbox.webhook_batch_problem(batch jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN batch IS NULL OR batch = 'null'::jsonb THEN NULL
        WHEN jsonb_typeof(batch) <> 'object'
             OR batch - 'maxEvents' - 'maxWaitMs' <> '{}'::jsonb
             OR jsonb_typeof(batch->'maxEvents') IS DISTINCT FROM 'number'
             OR jsonb_typeof(batch->'maxWaitMs') IS DISTINCT FROM 'number'
            THEN 'must be {"maxEvents": 1-1000, "maxWaitMs": 0-60000}'
        WHEN (batch->>'maxEvents')::numeric NOT BETWEEN 1 AND 1000
             OR (batch->>'maxEvents')::numeric <> trunc((batch->>'maxEvents')::numeric)
            THEN 'maxEvents must be an integer from 1 to 1000'
        WHEN (batch->>'maxWaitMs')::numeric NOT BETWEEN 0 AND 60000
             OR (batch->>'maxWaitMs')::numeric <> trunc((batch->>'maxWaitMs')::numeric)
            THEN 'maxWaitMs must be an integer from 0 to 60000'
    END
$$;

-- Raises the first problem of a webhook's filter, template or batch as a
-- check violation (23514) that says what is wrong: what SQL writers see.
CREATE FUNCTION postbox.webhook_settings_check(filter jsonb, template jsonb, batch jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    problem text;
BEGIN
    problem := postbox.webhook_filter_problem(filter);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'postbox: webhook filter %', problem USING ERRCODE = 'check_violation';
    END IF;
    problem := postbox.webhook_template_problem(template);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'postbox: webhook template %', problem USING ERRCODE = 'check_violation';
    END IF;
    problem := postbox.webhook_batch_problem(batch);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'postbox: webhook batch %', problem USING ERRCODE = 'check_violation';
    END IF;
    RETURN true;
END
$$;

ALTER TABLE postbox.webhooks
    ADD COLUMN filter jsonb,
    ADD COLUMN template jsonb,
    ADD COLUMN batch jsonb,
    -- The filter's two halves as the fan-out reads them: the path parsed
    -- once, when the row is written, not once per (event, webhook). (NULL
    -- for an invalid filter, which the CHECK below then refuses: generated
    -- columns are computed before constraints are checked.)
    ADD COLUMN filter_contains jsonb
        GENERATED ALWAYS AS (CASE WHEN postbox.webhook_filter_problem(filter) IS NULL
                                  AND jsonb_typeof(filter->'contains') = 'object'
                             THEN filter->'contains' END) STORED,
    ADD COLUMN filter_path jsonpath
        GENERATED ALWAYS AS (CASE WHEN postbox.webhook_filter_problem(filter) IS NULL
                                  AND jsonb_typeof(filter->'path') = 'string'
                             THEN (filter->>'path')::jsonpath END) STORED,
    -- The batch settings as integers (NULL: not batched).
    ADD COLUMN batch_max_events integer
        GENERATED ALWAYS AS (CASE WHEN postbox.webhook_batch_problem(batch) IS NULL
                             THEN (batch->>'maxEvents')::numeric::integer END) STORED,
    ADD COLUMN batch_max_wait_ms integer
        GENERATED ALWAYS AS (CASE WHEN postbox.webhook_batch_problem(batch) IS NULL
                             THEN (batch->>'maxWaitMs')::numeric::integer END) STORED,
    ADD CONSTRAINT webhooks_settings_valid CHECK (postbox.webhook_settings_check(filter, template, batch));

COMMENT ON COLUMN postbox.webhooks.filter IS
    '{"contains": {...}, "path": "<SQL/JSON path predicate>"}, both optional, both must hold; an event that does not match gets no delivery row. NULL: every event of the subscribed types.';
COMMENT ON COLUMN postbox.webhooks.template IS
    '"slack", "discord", "teams" or {"body": "<Jinja template>"}: the request body rendered from the event (id, type, timestamp, data). NULL: the standard body.';
COMMENT ON COLUMN postbox.webhooks.batch IS
    '{"maxEvents": 1-1000, "maxWaitMs": 0-60000}: one request carries up to maxEvents events, sent when that many are queued or the oldest has waited maxWaitMs. NULL: one request per event.';

-- The batch claim visits batched webhooks only (usually none).
CREATE INDEX webhooks_batched_idx ON postbox.webhooks (id) WHERE batch IS NOT NULL;

-- The batch a delivery was last sent in (its request's webhook-id); NULL
-- for a delivery never sent in a batch. A failed batch is retried as a
-- whole: its rows keep the id and are claimed together again.
ALTER TABLE postbox.deliveries ADD COLUMN batch_id uuid;

COMMENT ON COLUMN postbox.deliveries.batch_id IS
    'The batch (webhook-id of the batch request) this delivery was last sent in; NULL when never batched.';

CREATE INDEX deliveries_batch_idx ON postbox.deliveries (batch_id) WHERE batch_id IS NOT NULL;
