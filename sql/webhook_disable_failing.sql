-- webhook_disable_failing: turns off the active webhooks that have been
-- failing without any success for longer than POSTBOX_DISABLE_AFTER.
-- $1 now, $2 cutoff (now - disable_after), $3 reason. Returns the ids disabled.
--
-- The rule: a webhook is disabled when
--   1. it is active and was created or last changed before the cutoff (an
--      edit, such as turning it back on, restarts the clock);
--   2. it is failing now: some delivery of it is 'retrying', or went 'failed'
--      at or after the cutoff;
--   3. no delivery of it succeeded at or after the cutoff (nor does
--      webhooks.last_success_at, the successes retention already removed);
--   4. it has a failed attempt (no 2xx answer) that started before the cutoff
--      and after its latest success, if it ever had one.
-- So its first failure since its last success is older than the cutoff, and
-- nothing has succeeded since.
--
-- Cost: candidates come from the small partial indexes deliveries_due_idx
-- (retrying) and deliveries_failed_idx (V2); only those webhooks are examined,
-- through deliveries_webhook_idx and the attempts' primary key. Locks the
-- disabled webhook rows (SKIP LOCKED: a webhook being edited is left for the
-- next run).
WITH candidates AS (
    SELECT d.webhook_id
    FROM postbox.deliveries d
    WHERE d.status IN ('pending', 'retrying')
      AND d.status = 'retrying'
    UNION
    SELECT d.webhook_id
    FROM postbox.deliveries d
    WHERE d.status = 'failed'
      AND d.completed_at >= $2
), failing AS (
    SELECT w.id
    FROM postbox.webhooks w
    JOIN candidates c ON c.webhook_id = w.id
    CROSS JOIN LATERAL (
        SELECT greatest(
                   w.last_success_at,
                   (SELECT max(s.completed_at)
                    FROM postbox.deliveries s
                    WHERE s.webhook_id = w.id AND s.status = 'success')
               ) AS at
    ) last_success
    WHERE w.active
      AND greatest(w.created_at, w.updated_at) < $2
      AND (last_success.at IS NULL OR last_success.at < $2)
      AND EXISTS (
          SELECT 1
          FROM postbox.deliveries f
          JOIN postbox.delivery_attempts a ON a.delivery_id = f.id
          WHERE f.webhook_id = w.id
            AND f.status <> 'success'
            AND a.started_at < $2
            AND (last_success.at IS NULL OR a.started_at > last_success.at)
            AND (a.response_code IS NULL OR a.response_code NOT BETWEEN 200 AND 299)
      )
    FOR NO KEY UPDATE OF w SKIP LOCKED
)
UPDATE postbox.webhooks w
SET active = false, disabled_at = $1, disabled_reason = $3, updated_at = $1
FROM failing
WHERE w.id = failing.id
RETURNING w.id
