-- bench_plain_insert: one producer insert into the baseline table.
INSERT INTO public.bench_plain (event_type, owner_id, payload) VALUES ($1, $2, $3)
