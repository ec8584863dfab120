-- bench_delivery_count_success: successful deliveries of the given webhooks.
-- Reads deliveries_webhook_idx.
SELECT count(*) FROM postbox.deliveries WHERE webhook_id = ANY($1::uuid[]) AND status = 'success'
