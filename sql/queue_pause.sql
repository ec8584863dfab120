-- queue_pause: stops claiming in every dispatcher (delivery_claim reads this
-- flag). Updates the single queue_state row.
UPDATE postbox.queue_state SET paused = true, paused_at = coalesce(paused_at, now())
