-- lz4 (not the default pglz) compresses the large values: several times cheaper on CPU.
-- Profiles are JSON documents so that SQL (audience backfill) can read into them.
CREATE TABLE profiles (
    mpid BIGINT PRIMARY KEY,
    scope TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_stored_ms BIGINT NOT NULL,
    doc JSONB COMPRESSION lz4 NOT NULL
);
CREATE INDEX profiles_by_last_stored ON profiles (last_stored_ms);

-- The identity index: which profiles hold an identity, per identity scope.
CREATE TABLE identities (
    scope TEXT NOT NULL,
    id_type TEXT NOT NULL,
    id_value TEXT NOT NULL,
    mpid BIGINT NOT NULL,
    PRIMARY KEY (scope, id_type, id_value, mpid)
);
CREATE INDEX identities_by_mpid ON identities (mpid);

-- source_request_id seen per input (ING-4).
CREATE TABLE request_ids (
    input TEXT NOT NULL,
    request_id TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (input, request_id)
);

-- Every accepted batch exactly as received: profiles can be rebuilt from it (ING-5).
-- Ids come from a sequence: unique and increasing, but with gaps where a transaction rolled back.
CREATE TABLE event_log (
    id BIGSERIAL PRIMARY KEY,
    input TEXT NOT NULL,
    workspace_id BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    mpid BIGINT,
    source_request_id TEXT,
    client_ip TEXT,
    historical BOOLEAN NOT NULL DEFAULT FALSE,
    body BYTEA COMPRESSION lz4 NOT NULL
);
CREATE INDEX event_log_by_mpid ON event_log (mpid, id) WHERE mpid IS NOT NULL;

-- Refused and quarantined batches, kept with their reason for inspection and replay.
CREATE TABLE rejects (
    id BIGSERIAL PRIMARY KEY,
    input TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BYTEA NOT NULL,
    replayed_ms BIGINT
);
CREATE INDEX rejects_by_kind ON rejects (kind, id);
