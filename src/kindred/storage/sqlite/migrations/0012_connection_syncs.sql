-- Each audience connection's initial sync (ENR-4): its current members sent as adds, page by
-- page in MPID order, before its outbox rows. status: waiting | running | done | off.
-- cursor_mpid: the last member done; members_total: the audience's size when it began.
CREATE TABLE connection_syncs (
    connection TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    audience_id INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    cursor_mpid INTEGER,
    members_done INTEGER NOT NULL DEFAULT 0,
    members_total INTEGER NOT NULL DEFAULT 0,
    started_ms INTEGER,
    finished_ms INTEGER
);
-- Connections that already sent something before initial syncs existed count as synced
-- (audience_id NULL: whatever their audience), rather than sending every member again.
INSERT INTO connection_syncs (connection, status) SELECT connection, 'done' FROM connection_states;
-- Which members of a sync's page have rows waiting (they are skipped: their rows carry them).
CREATE INDEX outbox_by_connection_mpid ON outbox (connection, mpid);
