-- The partitioned batch log (kindred serve --role api|worker): how far each partition has
-- been applied, moved in the transaction that applies its batches (a redelivered batch
-- is then skipped), which worker reads each partition until when, and which workers are
-- present (a worker holding nothing still counts when the partitions are shared out).
CREATE TABLE log_positions (
    partition_no INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE TABLE partition_leases (
    partition_no INTEGER PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    expires_ms BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE partition_workers (
    owner TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
