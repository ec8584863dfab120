-- portal_link_consume: opens a portal link and starts its session in one
-- statement ($1 the link's token hash, $2 now, $3 the session's id hash,
-- $4 its CSRF token, $5 the session's end). The link is used once: the
-- UPDATE takes its row lock, and a second opening finds used_at set. No
-- row when the link is unknown, used or expired. Primary keys only.
WITH link AS (
    UPDATE postbox.portal_links
    SET used_at = $2
    WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
    RETURNING owner_id, admin
)
INSERT INTO postbox.portal_sessions (id_hash, owner_id, admin, csrf_token, created_at, expires_at)
SELECT $3, owner_id, admin, $4, $2, $5 FROM link
RETURNING owner_id, admin, csrf_token, expires_at
