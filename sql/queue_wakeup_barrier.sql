-- queue_wakeup_barrier: true when no producer transaction that may have read
-- dispatcher_waiting = false is still open (every producer holds the shared
-- form of this advisory lock until it commits). Never waits.
SELECT pg_try_advisory_xact_lock(7138400190000001) AS clear
