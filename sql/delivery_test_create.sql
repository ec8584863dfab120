-- delivery_test_create: the test send's rows, in one statement: a
-- 'webhook.test' event already fanned out (fanout_pending = false) and one
-- delivery for webhook $1 of owner $2 only, claimed at once as 'sending',
-- attempt 1, under a lease of $5 seconds from $4 (now). $3 payload. Answers
-- the claimed delivery as delivery_claim does; no row when the webhook is not
-- the owner's. The delivery is marked test_send: one attempt, also when its
-- lease expires (sql/delivery_rescue_expired.sql). Locks nothing beyond the
-- new rows.
WITH w AS (
    SELECT id, url, secret, headers, max_retries, retry_delay_seconds, active, template, retry_schedule,
           CASE WHEN previous_secret_expires_at > $4 THEN previous_secret END AS previous_secret
    FROM postbox.webhooks
    WHERE id = $1 AND owner_id = $2
), ev AS (
    INSERT INTO postbox.events (event_type, owner_id, payload, fanout_pending)
    SELECT 'webhook.test', $2, $3, false FROM w
    RETURNING id, event_type, payload, created_at
), d AS (
    INSERT INTO postbox.deliveries
        (webhook_id, event_id, event_type, status, attempts, next_attempt_at, lease_expires_at, created_at, updated_at, test_send)
    SELECT w.id, ev.id, ev.event_type, 'sending', 1, $4, $4 + make_interval(secs => $5), $4, $4, true
    FROM w, ev
    RETURNING id, attempts, lease_expires_at
)
SELECT d.id, d.lease_expires_at, w.id AS webhook_id, ev.id AS event_id, ev.event_type, d.attempts,
       ev.payload::text AS payload, ev.created_at AS event_created_at,
       w.url, w.secret, w.previous_secret, w.headers, w.max_retries, w.retry_delay_seconds, w.active,
       w.template, w.retry_schedule,
       -- A test send is never ordered.
       NULL::text AS ordering_key, NULL::text AS ordering_policy,
       -- Nor counted in flight (delivery_complete_many skips test sends).
       false AS in_flight_limited
FROM w, ev, d
