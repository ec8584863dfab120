-- bench_plain_create: the producer-cost baseline: a plain table of the same
-- shape as postbox.events (columns, defaults, indexes), with no trigger.
CREATE TABLE IF NOT EXISTS public.bench_plain (LIKE postbox.events INCLUDING ALL)
