-- bench_history_insert_many: fills the tables the way a week of traffic
-- would (issue 12's shape): for webhook $1, $2 finished (success)
-- deliveries, $3 future retries and $4 dead letters ('failed'); for webhook
-- $5 (a slow endpoint), $6 deliveries due now (its backlog). Each with its
-- own event, created an hour ago. Run with the events trigger disabled
-- (bench only).
WITH ev AS (
    INSERT INTO postbox.events (event_type, owner_id, payload, created_at, fanout_pending)
    SELECT 'project.updated', 'bench_history', '{"id": 1}'::jsonb, now() - interval '1 hour', false
    FROM generate_series(1, $2::int + $3::int + $4::int + $6::int)
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER () AS n FROM ev
), shaped AS (
    SELECT id, n,
           CASE WHEN n <= $2 THEN 'success'::postbox.delivery_status
                WHEN n <= $2 + $3 THEN 'retrying'
                WHEN n <= $2 + $3 + $4 THEN 'failed'
                ELSE 'pending' END AS status
    FROM numbered
)
INSERT INTO postbox.deliveries (webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at, updated_at, completed_at, response_code)
SELECT CASE WHEN s.status = 'pending' THEN $5::uuid ELSE $1::uuid END,
       s.id, 'project.updated', s.status,
       CASE s.status WHEN 'pending' THEN 0 WHEN 'failed' THEN 4 ELSE 1 END,
       CASE s.status WHEN 'retrying' THEN now() + interval '1 day' + s.n * interval '1 millisecond'
                     ELSE now() - interval '1 hour' END,
       now() - interval '1 hour', now() - interval '1 hour',
       CASE WHEN s.status IN ('success', 'failed') THEN now() - interval '1 hour' END,
       CASE s.status WHEN 'success' THEN 200 WHEN 'pending' THEN NULL ELSE 500 END
FROM shaped s
