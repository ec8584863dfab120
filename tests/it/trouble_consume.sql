-- The consumer pattern of docs/INTEGRATION.md ("Operational notifications"):
-- take up to 10 unprocessed rows of one owner, oldest first, skipping rows
-- another consumer holds, and mark them processed in the same statement
-- (in a real consumer: in the transaction that acts on them).
WITH next AS (
    SELECT n.id
    FROM postbox.notifications n
    WHERE n.owner_id = $1 AND n.processed_at IS NULL
    ORDER BY n.created_at
    LIMIT 10
    FOR UPDATE SKIP LOCKED
)
UPDATE postbox.notifications n
SET processed_at = now()
FROM next
WHERE n.id = next.id
RETURNING n.id, n.kind, n.webhook_id, n.delivery_id, n.detail, n.created_at
