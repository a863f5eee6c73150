-- The event retention (RET-1) finds the batches received before an account's retention
-- period, oldest first.
CREATE INDEX event_log_by_received ON event_log (received_ms, id);
