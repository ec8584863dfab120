-- delivery_page_by_webhook: the portal's delivery log, keyset-paged: a
-- window of one owner's webhook's deliveries older than the cursor, newest
-- first ($1 webhook, $2 owner, $3 cursor created_at, $4 cursor id (rows
-- strictly before ($3, $4) in (created_at, id) order), $5 oldest
-- created_at to include or NULL, $6 window size). Each row says whether it
-- passes the status ($7, or NULL) and event type ($8, or NULL) filters;
-- the caller keeps a page of the rows that do and continues after the
-- last row it looked at. The window is read from deliveries_webhook_idx
-- (webhook_id, created_at DESC, id DESC) from the cursor on, so any page
-- costs at most $6 index entries and heap rows, whatever the history
-- holds and however rare the filtered rows are. No lock.
SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
       d.response_code, NULL::text AS response_body, d.error_message, d.created_at,
       d.updated_at, d.completed_at, d.batch_id, d.ordering_key,
       ($7::postbox.delivery_status IS NULL OR d.status = $7)
         AND ($8::text IS NULL OR d.event_type = $8) AS matches
FROM postbox.deliveries d
WHERE d.webhook_id = $1
  AND EXISTS (SELECT 1 FROM postbox.webhooks w WHERE w.id = $1 AND w.owner_id = $2)
  AND (d.created_at, d.id) < ($3, $4)
  AND d.created_at >= coalesce($5, '-infinity'::timestamptz)
ORDER BY d.created_at DESC, d.id DESC
LIMIT $6
