-- Each audience connection's initial sync (ENR-4): its current members sent as adds, page by
-- page in MPID order, before its outbox rows. status: waiting | running | done | off.
-- cursor_mpid: the last member done; members_total: the audience's size when it began.
CREATE TABLE connection_syncs (
    connection TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    audience_id BIGINT,
    generation INTEGER NOT NULL DEFAULT 0,
    cursor_mpid BIGINT,
    members_done BIGINT NOT NULL DEFAULT 0,
    members_total BIGINT NOT NULL DEFAULT 0,
    started_ms BIGINT,
    finished_ms BIGINT
);
-- Connections that already sent something before initial syncs existed count as synced
-- (audience_id NULL: whatever their audience), rather than sending every member again.
INSERT INTO connection_syncs (connection, status) SELECT connection, 'done' FROM connection_states;
-- Which members of a sync's page have rows waiting (they are skipped: their rows carry them).
CREATE INDEX outbox_by_connection_mpid ON outbox (connection, mpid);
-- A sync's page of one audience's members in MPID order, read from the index (SQLite's
-- audience_members_by_audience holds the MPID already: the table's key).
CREATE INDEX audience_members_by_audience_mpid ON audience_members (audience_id, mpid);
