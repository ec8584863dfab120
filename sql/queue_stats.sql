-- queue_stats: queue-wide counts from the view postbox.queue_stats and
-- whether the queue is paused. The view reads the counters (exact) and counts
-- at most 100,000 entries of deliveries_due_idx per side to split queued rows
-- into waiting and delayed (see migrations/V4__counters_and_scale.sql); no lock.
SELECT q.waiting, q.active, q.completed, q.failed, q.delayed, q.paused,
       s.paused AS is_paused
FROM postbox.queue_stats q, postbox.queue_state s
