-- bench_table_writes: row versions written to Postbox's tables so far, as the
-- statistics collector has them (rows inserted, updated, of which HOT
-- updates, deleted), summed over the postbox schema. Reads
-- pg_stat_user_tables only; locks nothing. Backends report with a delay of
-- up to a second once idle.
SELECT coalesce(sum(n_tup_ins), 0)::bigint AS inserted,
       coalesce(sum(n_tup_upd), 0)::bigint AS updated,
       coalesce(sum(n_tup_hot_upd), 0)::bigint AS hot_updated,
       coalesce(sum(n_tup_del), 0)::bigint AS deleted
FROM pg_stat_user_tables
WHERE schemaname = 'postbox'
