-- bench_history_insert_many: fills the tables the way months of traffic
-- would: $2 finished (success) deliveries and $3 future retries for webhook
-- $1, with their events. Run with the events trigger disabled (bench only).
WITH ev AS (
    INSERT INTO postbox.events (event_type, owner_id, payload, created_at, fanout_pending)
    SELECT 'project.updated', 'bench_history', '{"id": 1}'::jsonb, now() - interval '1 hour', false
    FROM generate_series(1, $2::int + $3::int)
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER () AS n FROM ev
)
INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at, updated_at, completed_at, response_code)
SELECT $1, id, 'project.updated',
       CASE WHEN n <= $2 THEN 'success'::postbox.delivery_status ELSE 'retrying' END,
       1,
       CASE WHEN n <= $2 THEN now() - interval '1 hour' ELSE now() + interval '1 day' + n * interval '1 millisecond' END,
       now() - interval '1 hour', now() - interval '1 hour',
       CASE WHEN n <= $2 THEN now() - interval '1 hour' END,
       CASE WHEN n <= $2 THEN 200 ELSE 500 END
FROM numbered
