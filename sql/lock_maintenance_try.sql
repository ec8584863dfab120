-- lock_maintenance_try: takes the cluster-wide maintenance lock for this
-- session without waiting; true when this session now holds it. A session
-- (not transaction) advisory lock, so no transaction stays open across the
-- batched deletes; released by lock_maintenance_release.sql or when the
-- connection closes. No table is read or locked.
SELECT pg_try_advisory_lock(7138400190000003)
