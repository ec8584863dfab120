-- event_type_update: sets the description of open event type $1 to $2. No
-- row when there is no open type of that name. Locks the one row, found by
-- the primary key event_types_pkey.
UPDATE postbox.event_types SET description = $2
WHERE name = $1 AND retired_at IS NULL
RETURNING name, description
