-- webhook_insert: creates one webhook for an owner. $1 owner, $2 name,
-- $3 description, $4 url, $5 secret, $6 event types, $7 headers, $8 max
-- retries, $9 retry delay (s), $10 active, $11 filter, $12 template,
-- $13 batch (V9; NULL: none). Inserts one row; no lock beyond it.
INSERT INTO postbox.webhooks
    (owner_id, name, description, url, secret, event_types, headers, max_retries, retry_delay_seconds, active,
     filter, template, batch)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING id, name, description, url, event_types, headers, max_retries, retry_delay_seconds,
          active, verified, disabled_at, disabled_reason, created_at, updated_at,
       filter, template, batch
