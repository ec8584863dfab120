-- V6: outcomes that survive a database outage, and test sends that stay final.
-- Forward-only: never edit this file once it has landed; add a new one instead.

-- A test send (POST /api/webhooks/:id/test, sql/delivery_test_create.sql) is
-- one attempt, never retried. The lease rescue reads this flag to end a test
-- interrupted by a crash as a dead letter instead of retrying it with the
-- webhook's retry budget. A constant default: adding it rewrites nothing.
ALTER TABLE postbox.deliveries ADD COLUMN test_send boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN postbox.deliveries.test_send IS
    'True for the delivery of a test send: one attempt, never retried, also when its lease expires.';
COMMENT ON COLUMN postbox.deliveries.lease_expires_at IS
    'While status = ''sending'': the claim is void after this instant. Kept by the lease rescue on '
    'the rescued row (''retrying'', or ''failed'' for a test send) until a new claim or a retry: '
    'the marker that lets the late real outcome of that attempt still be recorded '
    '(sql/delivery_complete_many.sql).';
