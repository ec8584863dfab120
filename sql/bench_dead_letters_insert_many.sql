-- bench_dead_letters_insert_many: $2 dead letters ('failed', 4 attempts) of
-- webhook $1, each with its own event of owner $3 created an hour ago, for
-- the recover part; the webhook is paused first, so that the recovered rows
-- stay queued (the part times the recover statements, not their sending).
-- Appends only (and updates one webhook row).
WITH held AS (
    UPDATE postbox.webhooks SET paused = true WHERE id = $1 RETURNING id
), ev AS (
    INSERT INTO postbox.events (id, event_type, owner_id, payload, fanout_pending, created_at)
    SELECT postbox.uuid_v7(), 'project.updated', $3, jsonb_build_object('id', g), false,
           now() - interval '1 hour'
    FROM generate_series(1, $2::int) AS g
    RETURNING id, event_type, created_at
)
INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, next_attempt_at,
                                created_at, updated_at, completed_at)
SELECT h.id, ev.id, ev.event_type, 'failed', 4, ev.created_at, ev.created_at, ev.created_at, ev.created_at
FROM ev, held h
