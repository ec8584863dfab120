-- bench_webhook_rate_limit: sets webhook $1's rate_limit to $2 requests per
-- second (the benchmark's limited endpoint). Updates one row by key.
UPDATE postbox.webhooks SET rate_limit = $2 WHERE id = $1
