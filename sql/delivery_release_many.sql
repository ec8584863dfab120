-- delivery_release_many: gives claimed deliveries that were never sent back to
-- the queue (shutdown), due at once, and takes back their unused attempt
-- number. $1 ids, $2 attempts (fencing tokens), $3 now. Primary-key lookups.
UPDATE postbox.deliveries d
SET status = CASE WHEN d.attempts > 1 THEN 'retrying'::postbox.delivery_status ELSE 'pending' END,
    attempts = d.attempts - 1,
    lease_expires_at = NULL,
    next_attempt_at = $3,
    updated_at = $3
FROM unnest($1::uuid[], $2::int[]) AS r(id, attempt)
WHERE d.id = r.id
  AND d.status = 'sending'
  AND d.attempts = r.attempt
