-- event_get: one owner's event ($1 id, $2 owner): its payload for the
-- portal's delivery page. Primary-key lookup; no lock.
SELECT id, event_type, payload, created_at
FROM postbox.events
WHERE id = $1 AND owner_id = $2
