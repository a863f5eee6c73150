-- Web UI sessions, one per sign-in: the cookie names one (by an id whose hash is the key
-- here), and a page is served only while its session stands. Signing out sets ended_ms, so
-- a copy of the cookie stops working in every process sharing the store. Sessions that
-- ended are deleted at a later sign-in.
CREATE TABLE ui_sessions (
    session_key TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    ended_ms BIGINT
);

CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_ms);
