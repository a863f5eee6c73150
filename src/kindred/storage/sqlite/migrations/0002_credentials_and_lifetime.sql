-- Profile API credentials created with `kindred credentials create` (secrets as scrypt hashes).
CREATE TABLE api_credentials (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    workspaces TEXT NOT NULL,
    rate_limit_per_s REAL NOT NULL,
    rate_limit_burst INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    origin TEXT NOT NULL
);

-- Secrets every process sharing the store must agree on (the token signing key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- The lifetime sweep asks per identity scope for the profiles stored longest ago.
CREATE INDEX profiles_by_scope_last_stored ON profiles (scope, last_stored_ms);
DROP INDEX profiles_by_last_stored;
