-- Audience definitions (AUD-1), as JSON documents.
CREATE TABLE audiences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);

-- Every enter and exit, append-only (AUD-12).
CREATE TABLE membership_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audience_id INTEGER NOT NULL,
    mpid INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX membership_log_by_audience ON membership_log (audience_id, at_ms);
CREATE INDEX membership_log_by_mpid ON membership_log (mpid, at_ms);
