-- ordering_lines_check: the maintenance run's safety net for ordered
-- delivery (V12). Walks up to $1 (webhook, ordering key) lines that have
-- held deliveries, in key order after the cursor kept in
-- retention_state (ordering_checked_webhook, _key), and queues in
-- postbox.ordering_dirty each whose head is not in line (no row in
-- postbox.ordering_lines, or its head delivered, dead-lettered, cancelled or
-- gone): a line that lost its promotion (a head deleted or changed by hand)
-- would otherwise wait for ever; the dispatchers' promotion pass picks it
-- up. Changes nothing for a healthy line. Moves the cursor to the last line
-- walked, or back to the start after a short walk (the end was reached), so
-- successive runs cover every line however many there are. Returns how
-- many lines it walked and queued. Locks the retention_state row.
-- A recursive skip scan of deliveries_held_idx: one probe per line, not per
-- held row, and one primary-key probe of ordering_lines and of its head.
WITH RECURSIVE mark AS MATERIALIZED (
    SELECT s.ordering_checked_webhook AS webhook_id, s.ordering_checked_key AS ordering_key
    FROM postbox.retention_state s
    FOR UPDATE
), line AS (
    (SELECT d.webhook_id, d.ordering_key
     FROM postbox.deliveries d, mark c
     WHERE d.status = 'held'
       AND (d.webhook_id, d.ordering_key) > (c.webhook_id, c.ordering_key)
     ORDER BY d.webhook_id, d.ordering_key
     LIMIT 1)
    UNION ALL
    SELECT x.webhook_id, x.ordering_key
    FROM line l
    CROSS JOIN LATERAL (
        SELECT d.webhook_id, d.ordering_key
        FROM postbox.deliveries d
        WHERE d.status = 'held'
          AND (d.webhook_id, d.ordering_key) > (l.webhook_id, l.ordering_key)
        ORDER BY d.webhook_id, d.ordering_key
        LIMIT 1
    ) x
), walked AS MATERIALIZED (
    SELECT l.webhook_id, l.ordering_key FROM line l LIMIT $1
), lost AS MATERIALIZED (
    SELECT w.webhook_id, w.ordering_key
    FROM walked w
    WHERE NOT EXISTS (
        SELECT 1
        FROM postbox.ordering_lines o
        JOIN postbox.deliveries h ON h.id = o.head
        WHERE o.webhook_id = w.webhook_id
          AND o.ordering_key = w.ordering_key
          AND h.status IN ('pending', 'sending', 'retrying')
          AND h.ordering_seq IS NOT NULL)
), queued AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT l.webhook_id, l.ordering_key FROM lost l
    RETURNING 1
), last AS MATERIALIZED (
    SELECT x.webhook_id, x.ordering_key FROM walked x
    ORDER BY x.webhook_id DESC, x.ordering_key DESC
    LIMIT 1
), moved AS (
    UPDATE postbox.retention_state s
    SET ordering_checked_webhook = CASE WHEN (SELECT count(*) FROM walked) < $1
                                        THEN '00000000-0000-0000-0000-000000000000'::uuid
                                        ELSE (SELECT l.webhook_id FROM last l) END,
        ordering_checked_key = CASE WHEN (SELECT count(*) FROM walked) < $1 THEN ''
                                    ELSE (SELECT l.ordering_key FROM last l) END
    RETURNING 1
)
SELECT (SELECT count(*) FROM walked) AS walked,
       (SELECT count(*) FROM queued) AS queued,
       (SELECT count(*) FROM moved) AS moved
