-- ordering_lines_lock: locks the rows of the (webhook, ordering key) lines
-- $1[i], $2[i] (those that exist), in key order, until the transaction
-- ends. Ordered delivery (V12): the first statement of a transaction that
-- frees lines (outcomes that end their head, the promotion pass) and then
-- promotes their next deliveries with sql/delivery_promote_lines.sql. A
-- fan-out that held a delivery behind a head holds the same row until it
-- commits, so the promotion, a later statement, sees what it held. Waits
-- only on dispatcher statements (producers never lock lines). Primary-key
-- probes; returns how many rows it locked.
SELECT count(*) AS locked
FROM (
    SELECT l.webhook_id
    FROM unnest($1::uuid[], $2::text[]) AS u(webhook_id, ordering_key)
    JOIN postbox.ordering_lines l
      ON l.webhook_id = u.webhook_id AND l.ordering_key = u.ordering_key
    ORDER BY l.webhook_id, l.ordering_key
    FOR UPDATE OF l
) x
