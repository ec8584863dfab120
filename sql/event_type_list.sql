-- event_type_list: the event catalogue, by name: the types open for
-- publishing (retired ones are left out). Reads the small table
-- postbox.event_types in full; no lock.
SELECT name, description FROM postbox.event_types WHERE retired_at IS NULL ORDER BY name
