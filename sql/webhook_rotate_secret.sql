-- webhook_rotate_secret: installs a new secret ($3) on one owner's webhook
-- ($1 id, $2 owner). With a grace period ($4 seconds > 0) the old secret keeps
-- signing until now + $4; with 0 no old secret survives. SET reads the old
-- row, so previous_secret gets the secret being replaced. Locks the one row.
UPDATE postbox.webhooks
SET previous_secret = CASE WHEN $4::integer > 0 THEN secret END,
    previous_secret_expires_at = CASE WHEN $4::integer > 0 THEN now() + make_interval(secs => $4::integer) END,
    secret = $3,
    updated_at = now()
WHERE id = $1 AND owner_id = $2
RETURNING previous_secret_expires_at
