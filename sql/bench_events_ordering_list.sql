-- bench_events_ordering_list: owner $1's keyed events in commit order per
-- key (ordering_seq: taken under the key's lock, so for one key its order is
-- the order of the producers' commits): id, key. Reads the owner's events
-- (no index: the benchmark's own database, read once after the run).
SELECT id, ordering_key
FROM postbox.events
WHERE owner_id = $1 AND ordering_key IS NOT NULL
ORDER BY ordering_seq
