-- delivery_attempt_list: one page of a delivery's attempts, newest first
-- ($1 delivery, $2 webhook, $3 owner, $4 limit, $5 offset), each row with the
-- delivery's total of attempt rows. No row when the owner's webhook has no
-- such delivery; one row with a NULL attempt when the page is past the end.
-- Reads the delivery by primary key and delivery_attempts by its primary key
-- (delivery_id, attempt) backwards: the cost follows the page and the
-- delivery's own attempts (at most a retry budget per requeue), never the
-- table. No lock.
WITH d AS (
    SELECT d.id
    FROM postbox.deliveries d
    JOIN postbox.webhooks w ON w.id = d.webhook_id
    WHERE d.id = $1 AND d.webhook_id = $2 AND w.owner_id = $3
)
SELECT (SELECT count(*) FROM postbox.delivery_attempts c WHERE c.delivery_id = d.id) AS total,
       a.attempt, a.started_at, a.duration_ms, a.response_code, a.response_body, a.error_message
FROM d
LEFT JOIN LATERAL (
    SELECT x.attempt, x.started_at, x.duration_ms, x.response_code, x.response_body, x.error_message
    FROM postbox.delivery_attempts x
    WHERE x.delivery_id = d.id
    ORDER BY x.attempt DESC
    LIMIT $4 OFFSET $5
) a ON true
