-- webhook_filter_test_recent: the events of the $4 newest deliveries of
-- webhook $2 of owner $3, newest first (deliveries of one fan-out: by event), each with whether its payload
-- matches the valid filter $1 (the predicate of webhook_filter_test).
-- Reads deliveries_webhook_idx (webhook_id, created_at DESC) and the events
-- by primary key: $4 rows whatever the history. Locks nothing.
SELECT e.id AS event_id, e.event_type, e.created_at,
       ($1::jsonb->'contains' IS NULL OR e.payload @> ($1::jsonb->'contains'))
       AND ($1::jsonb->>'path' IS NULL OR coalesce(jsonb_path_match_tz(e.payload, ($1::jsonb->>'path')::jsonpath, '{}', true), false)) AS matches
FROM (SELECT d.event_id, d.created_at
      FROM postbox.deliveries d
      JOIN postbox.webhooks w ON w.id = d.webhook_id
      WHERE d.webhook_id = $2 AND w.owner_id = $3
      ORDER BY d.created_at DESC
      LIMIT $4) d
JOIN postbox.events e ON e.id = d.event_id
ORDER BY d.created_at DESC, e.created_at DESC, e.id DESC
