-- schema_history_list: every migration applied to this database, as refinery
-- recorded it in public.postbox_schema_history (a handful of rows), read
-- before migrating and by commands that run without migrating, so that a
-- schema from a newer version or a damaged row is refused with a clear line.
-- Locks nothing; a sequential scan of a tiny table (the primary key orders it).
SELECT version, name, applied_on, checksum
FROM postbox_schema_history
ORDER BY version
