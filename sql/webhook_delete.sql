-- webhook_delete: deletes one owner's webhook ($1 id, $2 owner). Its
-- deliveries and their attempts go with it (ON DELETE CASCADE), so nothing
-- queued for it is sent. Locks the row and its deliveries.
DELETE FROM postbox.webhooks
WHERE id = $1 AND owner_id = $2
RETURNING id
