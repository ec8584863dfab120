-- queue_stats: queue-wide counts from the view postbox.queue_stats and
-- whether the queue is paused. Scans deliveries (the view counts every
-- state); no lock.
SELECT q.waiting, q.active, q.completed, q.failed, q.delayed, q.paused,
       s.paused AS is_paused
FROM postbox.queue_stats q, postbox.queue_state s
