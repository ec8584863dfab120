-- event_publish: the SQL interface's publish, for the CLI and the API.
-- $1 type, $2 payload, $3 owner, $4 idempotency key (nullable), $5 ordering
-- key (nullable), $6 supersede (needs $5; NULL: false).
SELECT postbox.publish($1, $2, $3, $4, ordering_key => $5, supersede => $6) AS id
