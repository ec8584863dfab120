-- event_type_insert: adds event type $1 with description $2, or reopens it
-- when it was retired. No row when an open type of that name exists. Locks
-- the one row of the primary key event_types_pkey.
INSERT INTO postbox.event_types AS t (name, description) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, retired_at = NULL
    WHERE t.retired_at IS NOT NULL
RETURNING name, description
