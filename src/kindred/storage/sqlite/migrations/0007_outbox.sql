-- The durable outbox (ENR-3): one row per delivery over one connection, written in the
-- transaction of the profile change that caused it; removed once the output took it.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    kind TEXT NOT NULL,
    workspace_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    mpid INTEGER,
    source TEXT,
    client_ip TEXT,
    historical INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE INDEX outbox_by_connection ON outbox (connection, id);
-- Deliveries an output refused for good, for inspection and replay.
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    kind TEXT NOT NULL,
    workspace_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    mpid INTEGER,
    source TEXT,
    client_ip TEXT,
    historical INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    failed_ms INTEGER NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX dead_letters_by_connection ON dead_letters (connection, id);
-- Per connection: retries, fault (AUD-11), and which process sends over it (the lease).
CREATE TABLE connection_states (
    connection TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    failing_since_ms INTEGER,
    retry_at_ms INTEGER NOT NULL DEFAULT 0,
    faulted_ms INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0
);
-- Outputs and connections made through the admin API (kind: output, event_connection,
-- audience_connection).
CREATE TABLE forwarding_definitions (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (kind, name)
);
