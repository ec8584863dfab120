-- database_clock_now: the database server's clock now (clock_timestamp(), not
-- the transaction's start). Each process measures its offset to it
-- (clock::DatabaseClock) so that leases, rescues and due times are all on
-- one clock, whatever the skew between the hosts. Locks nothing, reads no table.
SELECT clock_timestamp()
