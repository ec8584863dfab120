-- delivery_promote_lines: for each (webhook, ordering key) line $1[i], $2[i]
-- whose head is no longer in line (delivered, dead-lettered, cancelled, out
-- of line under skip_failed, deleted, or none), makes the held delivery with
-- the lowest ordering_seq the head: status 'pending', due $3 (now), named in
-- postbox.ordering_lines; a line with nothing held loses its row. A line
-- whose head is still in line is left alone, so running it again, or for a
-- line that needs nothing, changes nothing.
--
-- Ordered delivery (V12; docs/WEBHOOKS.md). Run as a later statement of the
-- transaction that locked the lines (sql/ordering_lines_lock.sql): its
-- snapshot then holds every delivery a fan-out held behind the old head.
-- Never passes over a held delivery: the lowest one is read from the
-- snapshot and only it is locked (SKIP LOCKED). When another transaction
-- holds it (a producer's supersede cancelling it, a replay or retry), or it
-- changed since the snapshot, the line is left as it is and queued again
-- in ordering_dirty ("busy"), for the promotion pass after that transaction
-- ends: a dispatcher never waits on a producer, and a supersede that rolls
-- back cannot have let a later delivery go first. A line of a webhook being
-- deleted (its row locked) is left to the cascade. Per line: primary-key
-- probes of ordering_lines, of its head and of the webhook, one probe of
-- deliveries_held_idx. Returns the promoted and busy counts.
WITH line AS MATERIALIZED (
    SELECT DISTINCT u.webhook_id, u.ordering_key
    FROM unnest($1::uuid[], $2::text[]) AS u(webhook_id, ordering_key)
), hooks AS MATERIALIZED (
    -- FOR KEY SHARE, as the ordering_lines foreign key would take it below,
    -- but taken before any delivery is locked and never waited for.
    SELECT w.id
    FROM postbox.webhooks w
    WHERE w.id = ANY (ARRAY(SELECT DISTINCT l.webhook_id FROM line l))
    FOR KEY SHARE OF w SKIP LOCKED
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
    WHERE l.webhook_id IN (SELECT h.id FROM hooks h)
), first_held AS MATERIALIZED (
    -- The lowest held delivery of each line without a live head, as of the
    -- snapshot (not locked here).
    SELECT s.webhook_id, s.ordering_key, s.head,
           (SELECT d.id
            FROM postbox.deliveries d
            WHERE d.webhook_id = s.webhook_id
              AND d.ordering_key = s.ordering_key
              AND d.status = 'held'
            ORDER BY d.ordering_seq
            LIMIT 1) AS next_id
    FROM state s
    WHERE NOT s.live
), taken AS MATERIALIZED (
    -- Only those rows, locked, if still held (their newest version).
    SELECT d.id
    FROM postbox.deliveries d
    WHERE d.id = ANY (ARRAY(SELECT f.next_id FROM first_held f WHERE f.next_id IS NOT NULL))
      AND d.status = 'held'
    FOR UPDATE OF d SKIP LOCKED
), nxt AS MATERIALIZED (
    SELECT f.webhook_id, f.ordering_key, f.head, f.next_id,
           f.next_id IS NOT NULL AND f.next_id NOT IN (SELECT t.id FROM taken t) AS busy
    FROM first_held f
), moved AS (
    UPDATE postbox.ordering_lines o
    SET head = n.next_id
    FROM nxt n
    WHERE o.webhook_id = n.webhook_id AND o.ordering_key = n.ordering_key
      AND n.head IS NOT NULL AND n.next_id IS NOT NULL AND NOT n.busy
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
    WHERE n.head IS NULL AND n.next_id IS NOT NULL AND NOT n.busy
    ORDER BY n.webhook_id, n.ordering_key
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
), requeued AS (
    INSERT INTO postbox.ordering_dirty (webhook_id, ordering_key)
    SELECT n.webhook_id, n.ordering_key FROM nxt n WHERE n.busy
    RETURNING 1
)
SELECT (SELECT count(*) FROM promoted) AS promoted,
       (SELECT count(*) FROM requeued) AS busy
