-- portal_link_insert: records a single-use portal link ($1 SHA-256 of the
-- token, $2 owner, $3 admin, $4 expires at). Primary-key insert; no lock
-- beyond the new row.
INSERT INTO postbox.portal_links (token_hash, owner_id, admin, expires_at)
VALUES ($1, $2, $3, $4)
