-- event_type_retire: retires open event type $1 as of $2: publishing it is
-- refused from then on (events_before_insert_admit); stored events and their
-- deliveries stay. No row when there is no open type of that name. Locks the
-- one row, found by the primary key event_types_pkey.
UPDATE postbox.event_types SET retired_at = $2
WHERE name = $1 AND retired_at IS NULL
RETURNING name, description
