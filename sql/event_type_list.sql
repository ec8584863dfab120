-- event_type_list: the event catalogue, by name. Reads the small table
-- postbox.event_types in full; no lock.
SELECT name, description FROM postbox.event_types ORDER BY name
