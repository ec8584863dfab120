-- delivery_promote_lines: for each (webhook, ordering key) line $1[i], $2[i]
-- whose head is no longer in line (delivered, dead-lettered, cancelled, out
-- of line under skip_failed, deleted, or none), makes the held delivery with
-- the lowest ordering_seq the head: status 'pending', due $3 (now), named in
-- postbox.ordering_lines; a line with nothing held loses its row. A line
-- whose head is still in line is left alone, so running it again, or for a
-- line that needs nothing, changes nothing.
--
-- Ordered delivery (V12; docs/WEBHOOKS.md). Run as a later statement of the
-- transaction that locked the lines' rows (sql/ordering_lines_lock.sql):
-- its snapshot then holds every delivery a fan-out held behind the old head.
-- A held row another transaction holds locked (a producer's supersede
-- cancelling it) is passed over for the next (SKIP LOCKED): never waits on
-- a producer. Per line: a primary-key probe of ordering_lines and of the
-- head, one probe of deliveries_held_idx. Returns the promoted count.
WITH line AS MATERIALIZED (
    SELECT DISTINCT u.webhook_id, u.ordering_key
    FROM unnest($1::uuid[], $2::text[]) AS u(webhook_id, ordering_key)
), state AS MATERIALIZED (
    SELECT l.webhook_id, l.ordering_key, x.head,
           EXISTS (SELECT 1 FROM postbox.deliveries d
                   WHERE d.id = x.head
                     AND d.status IN ('pending', 'sending', 'retrying')
                     AND d.ordering_seq IS NOT NULL) AS live
    FROM line l
    LEFT JOIN LATERAL (
        SELECT o.head FROM postbox.ordering_lines o
        WHERE o.webhook_id = l.webhook_id AND o.ordering_key = l.ordering_key
    ) x ON true
), nxt AS MATERIALIZED (
    SELECT s.webhook_id, s.ordering_key, s.head, h.id AS next_id
    FROM state s
    LEFT JOIN LATERAL (
        SELECT d.id
        FROM postbox.deliveries d
        WHERE d.webhook_id = s.webhook_id
          AND d.ordering_key = s.ordering_key
          AND d.status = 'held'
        ORDER BY d.ordering_seq
        LIMIT 1
        FOR UPDATE OF d SKIP LOCKED
    ) h ON true
    WHERE NOT s.live
), moved AS (
    UPDATE postbox.ordering_lines o
    SET head = n.next_id
    FROM nxt n
    WHERE o.webhook_id = n.webhook_id AND o.ordering_key = n.ordering_key
      AND n.head IS NOT NULL AND n.next_id IS NOT NULL
    RETURNING o.head
), dropped AS (
    DELETE FROM postbox.ordering_lines o
    USING nxt n
    WHERE o.webhook_id = n.webhook_id AND o.ordering_key = n.ordering_key
      AND n.head IS NOT NULL AND n.next_id IS NULL
    RETURNING o.webhook_id
), added AS (
    INSERT INTO postbox.ordering_lines (webhook_id, ordering_key, head)
    SELECT n.webhook_id, n.ordering_key, n.next_id
    FROM nxt n
    WHERE n.head IS NULL AND n.next_id IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING head
), promoted AS (
    UPDATE postbox.deliveries d
    SET status = 'pending',
        next_attempt_at = $3,
        updated_at = $3
    WHERE d.id = ANY (ARRAY(SELECT m.head FROM moved m UNION ALL SELECT a.head FROM added a))
      AND d.status = 'held'
    RETURNING d.id
)
SELECT (SELECT count(*) FROM promoted) AS promoted,
       (SELECT count(*) FROM dropped) AS emptied
