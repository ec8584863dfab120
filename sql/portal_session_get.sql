-- portal_session_get: the live session of a cookie ($1 its id hash, $2 now).
-- Primary-key lookup; no lock.
SELECT owner_id, admin, csrf_token, expires_at
FROM postbox.portal_sessions
WHERE id_hash = $1 AND expires_at > $2
