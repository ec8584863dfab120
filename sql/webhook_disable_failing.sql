-- webhook_disable_failing: turns off the active webhooks that have been
-- failing without any success for longer than POSTBOX_DISABLE_AFTER.
-- $1 now, $2 cutoff (now - disable_after), $3 reason. Returns the ids disabled.
--
-- The rule: a webhook is disabled when
--   1. it is active and was created or last changed before the cutoff (an
--      edit, such as turning it back on, restarts the clock);
--   2. it is failing now: some delivery of it is 'retrying', or its latest
--      failed attempt is at or after the cutoff;
--   3. it has no success at or after the cutoff (webhook_activity, nor
--      webhooks.last_success_at, which retention wrote before V4);
--   4. its first failed attempt since its latest success (if any) is older
--      than the cutoff.
-- So its first failure since its last success is older than the cutoff, and
-- nothing has succeeded since.
--
-- Reads the outcomes kept per webhook in webhook_activity (one row per
-- webhook, folded by sql/delivery_count_rollup.sql, which the maintenance run
-- executes first) and, for rule 2, the retrying count of the candidates
-- (view postbox.delivery_totals):
-- no delivery is read, whatever the history. A failed attempt is a delivery
-- entering 'retrying' (at its updated_at) or 'failed' (at its completed_at).
-- Locks the disabled webhook rows (SKIP LOCKED: a webhook being edited is
-- left for the next run).
WITH failing AS (
    SELECT w.id
    FROM postbox.webhook_activity a
    JOIN postbox.webhooks w ON w.id = a.webhook_id
    WHERE a.failing_since < $2
      AND (a.last_success_at IS NULL OR a.last_success_at < $2)
      AND (w.last_success_at IS NULL OR w.last_success_at < $2)
      AND w.active
      AND greatest(w.created_at, w.updated_at) < $2
      AND (a.last_failure_at >= $2
           OR EXISTS (SELECT 1 FROM postbox.delivery_totals t
                      WHERE t.webhook_id = w.id AND t.status = 'retrying' AND t.n > 0))
    FOR NO KEY UPDATE OF w SKIP LOCKED
)
UPDATE postbox.webhooks w
SET active = false, disabled_at = $1, disabled_reason = $3, updated_at = $1
FROM failing
WHERE w.id = failing.id
RETURNING w.id
