-- V2: what the maintenance jobs (retention, auto-disable, queue gauges) need.
-- Forward-only: never edit this file once it has landed; add V3__... instead.

-- The latest successful delivery retention has removed. Retention deletes
-- successful deliveries after POSTBOX_RETENTION_SUCCESS (24h), long before
-- POSTBOX_DISABLE_AFTER (5d) runs out, so auto-disable would otherwise forget
-- successes older than a day. Written only by maintenance_delivery_delete_success.sql;
-- the latest success is greatest(last_success_at, max(completed_at) of the
-- webhook's deliveries in status 'success').
ALTER TABLE postbox.webhooks ADD COLUMN last_success_at timestamptz;

COMMENT ON COLUMN postbox.webhooks.last_success_at IS
    'Latest success among the deliveries retention has deleted; see also postbox.deliveries.';

-- Dead letters by completion: failed retention, the failed-queue gauge and the
-- auto-disable candidate scan read only these rows, not the (much larger) set
-- of successes in deliveries_finished_idx. Failures are rare: a cheap index.
CREATE INDEX deliveries_failed_idx ON postbox.deliveries (completed_at)
    WHERE status = 'failed';
