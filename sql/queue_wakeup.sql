-- queue_wakeup: wakes idle dispatchers (NOTIFY postbox_wakeup, delivered at
-- commit) after work was requeued or the queue resumed. No lock.
SELECT pg_notify('postbox_wakeup', '')
