-- The merge ledger (IDS-6): every merge with both profiles as they were before it.
CREATE TABLE merges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    survivor INTEGER NOT NULL,
    merged INTEGER NOT NULL,
    rule TEXT NOT NULL,
    merged_ms INTEGER NOT NULL,
    identity_type TEXT,
    identity_value TEXT,
    moved_log_ids TEXT NOT NULL,
    detail TEXT,
    unmerged_ms INTEGER,
    survivor_before BLOB NOT NULL,
    merged_before BLOB NOT NULL
);
CREATE INDEX merges_by_survivor ON merges (survivor, id);
CREATE INDEX merges_by_merged ON merges (merged, id);
