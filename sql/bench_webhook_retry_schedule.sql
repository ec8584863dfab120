-- bench_webhook_retry_schedule: sets webhook $1's retry_schedule to $2
-- (seconds before each retry; the ordering part's short schedule). Updates
-- one row by key.
UPDATE postbox.webhooks SET retry_schedule = $2 WHERE id = $1
