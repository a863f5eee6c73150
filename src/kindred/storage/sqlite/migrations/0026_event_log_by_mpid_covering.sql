-- The log's index by MPID holds every column but the body: an activation reading a range
-- of profiles' stamped batches (SqliteStore.log_for_mpid_range without stamped bodies)
-- reads the index alone, in MPID order, not one table row (and its body's page) a batch.
DROP INDEX event_log_by_mpid;
CREATE INDEX event_log_by_mpid ON event_log (
    mpid, id, status, input, received_ms, workspace_id, reason, source_request_id,
    client_ip, historical, event_stamps
) WHERE mpid IS NOT NULL;
