-- portal_tail_watch: keeps the deliveries trigger notifying
-- postbox_portal_tail until $1 (a process with live-tail clients renews it;
-- see migrations/V8__portal.sql). One-row update.
UPDATE postbox.portal_tail SET watched_until = greatest(coalesce(watched_until, $1), $1)
