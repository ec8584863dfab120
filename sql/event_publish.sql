-- event_publish: the SQL interface's publish, for the CLI and the API.
-- $1 type, $2 payload, $3 owner, $4 idempotency key (nullable).
SELECT postbox.publish($1, $2, $3, $4) AS id
