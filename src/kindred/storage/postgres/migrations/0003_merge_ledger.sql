-- The merge ledger (IDS-6): every merge with both profiles as they were before it.
CREATE TABLE merges (
    id BIGSERIAL PRIMARY KEY,
    scope TEXT NOT NULL,
    survivor BIGINT NOT NULL,
    merged BIGINT NOT NULL,
    rule TEXT NOT NULL,
    merged_ms BIGINT NOT NULL,
    identity_type TEXT,
    identity_value TEXT,
    moved_log_ids TEXT NOT NULL,
    detail TEXT,
    unmerged_ms BIGINT,
    survivor_before BYTEA NOT NULL,
    merged_before BYTEA NOT NULL
);
CREATE INDEX merges_by_survivor ON merges (survivor, id);
CREATE INDEX merges_by_merged ON merges (merged, id);
