-- lock_maintenance_release: releases the maintenance lock taken by
-- lock_maintenance_try.sql on this same session; false when it was not held.
SELECT pg_advisory_unlock(7138400190000003)
