-- The membership log by profile: no query of this store reads it (the counts read the log
-- by audience; `membership_log` walks it in id order), while each entry went to a random
-- spot of an index as large as the log: a backfill wrote a page of it for nearly every
-- member it entered, and more pages the longer the log grew.
DROP INDEX IF EXISTS membership_log_by_mpid;
