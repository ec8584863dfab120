-- delivery_next_due: the earliest due time of queued work, or now if events
-- wait for fan-out (the benchmark waits on it for a quiet queue; the
-- dispatcher reads the same figure from event_fanout_many). Two index probes
-- (deliveries_due_idx, events_fanout_pending_idx).
SELECT CASE WHEN EXISTS (SELECT 1 FROM postbox.events WHERE fanout_pending) THEN now()
            ELSE (SELECT min(next_attempt_at) FROM postbox.deliveries WHERE status IN ('pending', 'retrying'))
       END AS next_due
