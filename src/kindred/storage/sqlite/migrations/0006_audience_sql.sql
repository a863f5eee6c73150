-- SQLite tests stored values with functions registered on each connection
-- (storage/sqlite/functions.py); nothing to store for compiled audience criteria.
SELECT 1;
