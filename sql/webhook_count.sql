-- webhook_count: how many webhooks an owner has ($1 owner), for pagination.
-- Reads webhooks_owner_idx; no lock.
SELECT count(*) AS total FROM postbox.webhooks WHERE owner_id = $1
