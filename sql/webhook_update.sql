-- webhook_update: changes the fields given (NULL = keep) of one owner's
-- webhook. $1 id, $2 owner, $3 name, $4 description given?, $5 description,
-- $6 url, $7 event types, $8 headers, $9 max retries, $10 retry delay,
-- $11 active; $12/$14/$16 whether filter/template/batch are given, $13/$15/$17
-- their values (given as NULL: cleared). Setting active = true clears
-- disabled_at and disabled_reason.
-- Locks the one row (primary key).
UPDATE postbox.webhooks
SET name = coalesce($3, name),
    description = CASE WHEN $4::boolean THEN $5 ELSE description END,
    url = coalesce($6, url),
    event_types = coalesce($7, event_types),
    headers = coalesce($8, headers),
    max_retries = coalesce($9, max_retries),
    retry_delay_seconds = coalesce($10, retry_delay_seconds),
    active = coalesce($11, active),
    filter = CASE WHEN $12::boolean THEN $13::jsonb ELSE filter END,
    template = CASE WHEN $14::boolean THEN $15::jsonb ELSE template END,
    batch = CASE WHEN $16::boolean THEN $17::jsonb ELSE batch END,
    disabled_at = CASE WHEN $11 IS TRUE THEN NULL ELSE disabled_at END,
    disabled_reason = CASE WHEN $11 IS TRUE THEN NULL ELSE disabled_reason END,
    updated_at = now()
WHERE id = $1 AND owner_id = $2
RETURNING id, name, description, url, event_types, headers, max_retries, retry_delay_seconds,
          active, verified, disabled_at, disabled_reason, created_at, updated_at,
       filter, template, batch
