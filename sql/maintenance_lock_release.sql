-- maintenance_lock_release: releases the maintenance lock taken by
-- maintenance_lock_try.sql on this same session; false when it was not held.
SELECT pg_advisory_unlock(7138400190000003)
