-- bench_webhook_insert: one benchmark endpoint ($1 owner, $2 url, $3 secret,
-- $4 retry delay seconds).
INSERT INTO postbox.webhooks (owner_id, name, url, secret, event_types, retry_delay_seconds)
VALUES ($1, 'bench', $2, $3, ARRAY['*'], $4)
RETURNING id
