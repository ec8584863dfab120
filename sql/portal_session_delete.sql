-- portal_session_delete: ends one session (sign out; $1 its id hash).
-- Primary-key delete.
DELETE FROM postbox.portal_sessions WHERE id_hash = $1
