-- bench_server_pids: the server processes whose CPU the benchmark counts:
-- every backend connected to this database (the dispatcher's, the
-- benchmark's, autovacuum workers on it) and the server-wide background
-- processes (WAL writer, checkpointer, background writer, launchers), which
-- have no database. Reads pg_stat_activity only; locks nothing.
SELECT pid
FROM pg_stat_activity
WHERE datname = current_database() OR datname IS NULL
