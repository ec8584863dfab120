-- bench_events_insert_many: the benchmark's backlog: $3 events spread over the
-- owners $1 || 0 .. $1 || ($2 - 1), committed in one statement (through the
-- trigger, like any producer's). Each payload is about 340 bytes as text (a
-- note of $4 characters pads it), the size of the drains compared in
-- docs/PERFORMANCE.md. $5 ordering keys: 0 leaves every event unkeyed (the
-- key is NULL: the ordering trigger returns at once, the unkeyed path);
-- otherwise event g gets the key 'k' || (g % $5). Appends only; a keyed
-- event takes its key's advisory lock until the statement commits.
INSERT INTO postbox.events (event_type, owner_id, payload, ordering_key)
SELECT 'project.updated', $1 || (g % $2)::text,
       jsonb_build_object('id', g, 'name', 'bench project', 'tags', jsonb_build_array('a', 'b'),
                          'note', repeat('x', $4::int)),
       'k' || (g % nullif($5::int, 0))::text
FROM generate_series(1, $3::int) AS g
