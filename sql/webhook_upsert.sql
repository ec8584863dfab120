-- webhook_upsert: registers the webhook with a fixed id ($1) for owner $2, or
-- points that owner's existing one at $4 again and turns it back on:
-- `postbox dev` runs it on every start for its demo webhook. $3 name, $4 url,
-- $5 event types, $6 now. The secret is generated on insert and kept
-- afterwards. No row comes back when the id belongs to another owner.
-- Inserts or locks and updates that one row; relies on the primary key.
INSERT INTO postbox.webhooks (id, owner_id, name, url, event_types, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, url = EXCLUDED.url, event_types = EXCLUDED.event_types,
    active = true, disabled_at = NULL, disabled_reason = NULL, updated_at = $6
WHERE postbox.webhooks.owner_id = EXCLUDED.owner_id
RETURNING secret
