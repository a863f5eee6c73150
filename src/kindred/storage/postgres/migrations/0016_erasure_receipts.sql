-- Erasure receipts (BEY-6): one row per erased subject (a data subject request's erasure,
-- or one profile of a bulk deletion); `doc` holds the record (domain.receipts.ReceiptRecord
-- as JSON: the signed receipt and the identities a verification looks for again).
CREATE TABLE erasure_receipts (
    receipt_id TEXT PRIMARY KEY,
    request_id TEXT,
    workspace_id BIGINT,
    made_ms BIGINT NOT NULL,
    doc TEXT NOT NULL
);

CREATE INDEX erasure_receipts_by_made ON erasure_receipts (made_ms);
CREATE INDEX erasure_receipts_by_workspace ON erasure_receipts (workspace_id, made_ms);
