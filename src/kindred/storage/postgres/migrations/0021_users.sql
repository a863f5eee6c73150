-- Users added with `kindred users add` (config-file users are not stored): a role and
-- the scrypt hash of their password.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Users' API keys for the admin API (`kindred users key create`): an scrypt hash of the
-- secret, never the secret. A revoked key keeps its row (revoked_ms set).
CREATE TABLE user_keys (
    key_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

CREATE INDEX user_keys_by_user ON user_keys (user_name);
