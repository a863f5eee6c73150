-- Profiles are JSON documents so that SQL (audience backfill) can read into them.
CREATE TABLE profiles (
    mpid INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    last_stored_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX profiles_by_last_stored ON profiles (last_stored_ms);

-- The identity index: which profiles hold an identity, per identity scope.
CREATE TABLE identities (
    scope TEXT NOT NULL,
    id_type TEXT NOT NULL,
    id_value TEXT NOT NULL,
    mpid INTEGER NOT NULL,
    PRIMARY KEY (scope, id_type, id_value, mpid)
) WITHOUT ROWID;
CREATE INDEX identities_by_mpid ON identities (mpid);

-- source_request_id seen per input (ING-4).
CREATE TABLE request_ids (
    input TEXT NOT NULL,
    request_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (input, request_id)
) WITHOUT ROWID;

-- Every accepted batch exactly as received: profiles can be rebuilt from it (ING-5).
CREATE TABLE event_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    input TEXT NOT NULL,
    workspace_id INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    mpid INTEGER,
    source_request_id TEXT,
    client_ip TEXT,
    historical INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE INDEX event_log_by_mpid ON event_log (mpid, id) WHERE mpid IS NOT NULL;

-- Refused and quarantined batches, kept with their reason for inspection and replay.
CREATE TABLE rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    input TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BLOB NOT NULL,
    replayed_ms INTEGER
);
CREATE INDEX rejects_by_kind ON rejects (kind, id);
