-- bench_webhook_shape_many: sets the filter ($2) and batch ($3) of the
-- benchmark's webhooks $1 (NULL: none). Locks those rows (primary key).
UPDATE postbox.webhooks
SET filter = $2::jsonb, batch = $3::jsonb
WHERE id = ANY ($1::uuid[])
