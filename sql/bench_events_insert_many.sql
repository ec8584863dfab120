-- bench_events_insert_many: the benchmark's backlog: $3 events spread over the
-- owners $1 || 0 .. $1 || ($2 - 1), committed in one statement (through the
-- trigger, like any producer's). Each payload is about 340 bytes as text (a
-- note of $4 characters pads it), the size of the drains compared in
-- docs/PERFORMANCE.md. Appends only.
INSERT INTO postbox.events (event_type, owner_id, payload)
SELECT 'project.updated', $1 || (g % $2)::text,
       jsonb_build_object('id', g, 'name', 'bench project', 'tags', jsonb_build_array('a', 'b'),
                          'note', repeat('x', $4::int))
FROM generate_series(1, $3::int) AS g
