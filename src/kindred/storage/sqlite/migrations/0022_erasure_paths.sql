-- An erasure deletes the subject's batches that were never applied to a profile (no MPID)
-- by looking into their bodies: this index keeps that to those few batches instead of a
-- scan of the whole event log on every erasure.
CREATE INDEX event_log_unapplied ON event_log (id) WHERE mpid IS NULL;
-- A completed erasure's status tells whether each erasure message sent to an output that
-- accepts erasures is still in the outbox or a dead letter (by the rows' source).
CREATE INDEX outbox_erasures ON outbox (source) WHERE kind = 'erasure';
CREATE INDEX dead_letters_erasures ON dead_letters (source) WHERE kind = 'erasure';
