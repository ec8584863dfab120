-- queue_state_set_waiting: a dispatcher says whether it is idle and waiting
-- for a NOTIFY ($1). Writes the single queue_state row only when it changes.
UPDATE postbox.queue_state
SET dispatcher_waiting = $1
WHERE dispatcher_waiting IS DISTINCT FROM $1
