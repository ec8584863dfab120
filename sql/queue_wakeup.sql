-- queue_wakeup: wakes idle dispatchers (NOTIFY postbox_wakeup, delivered at
-- commit) after work was requeued or the queue resumed. The payload 'claim'
-- tells them to look for due deliveries, not only for new events. No lock.
SELECT pg_notify('postbox_wakeup', 'claim')
