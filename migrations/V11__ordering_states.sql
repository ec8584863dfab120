-- V11: the delivery states of ordered delivery (SPEC 7.2; docs/STATE_MACHINE.md).
-- Alone in its migration: a value added by ALTER TYPE ... ADD VALUE cannot be
-- used in the transaction that adds it, and V12 uses both in index predicates.
-- Forward-only: never edit this file once it has landed; add a new one instead.

-- 'held': a delivery of an ordering key waiting behind an earlier one of the
-- same (webhook, key); not claimable, no attempt made, no retry budget spent.
ALTER TYPE postbox.delivery_status ADD VALUE IF NOT EXISTS 'held';
-- 'cancelled': superseded by a newer event of the same key and type before it
-- was delivered (error_message names that event). Final, kept in history.
ALTER TYPE postbox.delivery_status ADD VALUE IF NOT EXISTS 'cancelled';
