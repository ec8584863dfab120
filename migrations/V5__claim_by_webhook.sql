-- V5: the claim reaches due work webhook by webhook.
-- Forward-only: never edit this file once it has landed; add a new one instead.

-- Queued rows (pending, retrying) by webhook, then due time. delivery_claim
-- walks it twice: a skip scan that visits each webhook with queued rows once
-- (one probe, not one per row), then, for each webhook with room, its due
-- rows in due order, locking only the rows it takes. A webhook at its
-- in-flight cap therefore costs one probe per claim, whatever its backlog.
CREATE INDEX deliveries_webhook_due_idx ON postbox.deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
