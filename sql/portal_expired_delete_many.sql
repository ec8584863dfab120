-- portal_expired_delete_many: deletes up to $2 links and up to $2 sessions
-- that ended before $1 (links: expired, used or not). Called when a link is
-- minted, so the tables hold about the links and sessions of the last
-- session lifetime. Reads portal_links_expires_idx and
-- portal_sessions_expires_idx; locks only the rows it deletes.
WITH links AS (
    DELETE FROM postbox.portal_links
    WHERE token_hash = ANY (ARRAY(
        SELECT token_hash FROM postbox.portal_links WHERE expires_at < $1
        ORDER BY expires_at LIMIT $2))
    RETURNING 1
), sessions AS (
    DELETE FROM postbox.portal_sessions
    WHERE id_hash = ANY (ARRAY(
        SELECT id_hash FROM postbox.portal_sessions WHERE expires_at < $1
        ORDER BY expires_at LIMIT $2))
    RETURNING 1
)
SELECT (SELECT count(*) FROM links) + (SELECT count(*) FROM sessions) AS deleted
