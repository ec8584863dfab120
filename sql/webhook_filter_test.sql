-- webhook_filter_test: whether payload $2 matches the valid filter $1, by the
-- predicate of sql/event_fanout_many.sql (containment, then the path
-- predicate; a path that cannot judge the payload does not match). Reads and
-- locks nothing.
SELECT ($1::jsonb->'contains' IS NULL OR $2::jsonb @> ($1::jsonb->'contains'))
   AND ($1::jsonb->>'path' IS NULL OR coalesce(jsonb_path_match_tz($2::jsonb, ($1::jsonb->>'path')::jsonpath, '{}', true), false))
