-- V8: the web portal (docs/PORTAL.md): single-use sign-in links, sessions,
-- and the live tail's wake-up.
-- Forward-only: never edit this file once it has landed; add V9__... instead.

-- A portal link: the SHA-256 of its random token (the token itself is only
-- in the URL handed out), whose owner it opens, and until when. Opening it
-- sets used_at in the same statement that starts the session, so a link
-- opens at most one session.
CREATE TABLE postbox.portal_links (
    token_hash bytea PRIMARY KEY,
    owner_id   text NOT NULL CHECK (owner_id <> ''),
    admin      boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX portal_links_expires_idx ON postbox.portal_links (expires_at);

-- A portal session: the SHA-256 of the cookie's random value, the owner it
-- acts for (with the admin role or not), the CSRF token every form and
-- mutating request must carry, and its end.
CREATE TABLE postbox.portal_sessions (
    id_hash    bytea PRIMARY KEY,
    owner_id   text NOT NULL CHECK (owner_id <> ''),
    admin      boolean NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expires_idx ON postbox.portal_sessions (expires_at);

-- The live tail's wake-up. While some portal page tails deliveries, its
-- process keeps watched_until a little in the future; every statement that
-- inserts or updates deliveries then sends one NOTIFY postbox_portal_tail
-- (one per statement, whatever its row count: fan-out and completion write
-- in batches, and Postgres folds equal notifications of one transaction).
-- Nobody watching: one read of this one-row table per statement, no
-- NOTIFY, so producers and dispatchers pay nothing for a portal nobody
-- looks at. A process that dies while watching stops costing NOTIFYs when
-- watched_until passes. postbox.notify = off (two-phase commit) is
-- honoured as in the events trigger.
CREATE TABLE postbox.portal_tail (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    watched_until timestamptz
);
INSERT INTO postbox.portal_tail (singleton) VALUES (true);

CREATE FUNCTION postbox.deliveries_portal_tail_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF lower(coalesce(current_setting('postbox.notify', true), '')) NOT IN ('off', 'false', 'no', '0')
       AND EXISTS (SELECT 1 FROM postbox.portal_tail WHERE watched_until > now()) THEN
        PERFORM pg_notify('postbox_portal_tail', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_portal_tail
    AFTER INSERT OR UPDATE ON postbox.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION postbox.deliveries_portal_tail_notify();
