-- Data subject requests (OpenDSR: access, portability, erasure), one row per request of a
-- workspace; `doc` holds the request (domain.dsr.DsrRequest as JSON), the columns what is
-- looked up. An open request (pending, in progress) of one type and subject is unique per
-- workspace: a second one is refused (409) by this index, across processes.
CREATE TABLE dsr_requests (
    workspace_id BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    request_type TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    status TEXT NOT NULL,
    group_id TEXT,
    received_ms BIGINT NOT NULL,
    due_ms BIGINT NOT NULL,
    status_ms BIGINT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    result BYTEA,
    PRIMARY KEY (workspace_id, request_id)
);

CREATE UNIQUE INDEX dsr_requests_open ON dsr_requests (workspace_id, request_type, subject_key)
    WHERE status IN ('pending', 'in_progress');
CREATE INDEX dsr_requests_due ON dsr_requests (status, due_ms);
CREATE INDEX dsr_requests_by_received ON dsr_requests (workspace_id, received_ms);

-- An erasure deletes the outbox rows and dead letters of the subject's MPIDs.
CREATE INDEX outbox_by_mpid ON outbox (mpid) WHERE mpid IS NOT NULL;
CREATE INDEX dead_letters_by_mpid ON dead_letters (mpid) WHERE mpid IS NOT NULL;
