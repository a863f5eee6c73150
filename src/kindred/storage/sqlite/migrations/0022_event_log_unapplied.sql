-- An erasure deletes the subject's batches that were never applied to a profile (no MPID)
-- by looking into their bodies: this index keeps that to those few batches instead of a
-- scan of the whole event log on every erasure.
CREATE INDEX event_log_unapplied ON event_log (id) WHERE mpid IS NULL;
