-- queue_resume: lets dispatchers claim again. Updates the single queue_state
-- row; callers then send queue_wakeup.
UPDATE postbox.queue_state SET paused = false, paused_at = NULL
