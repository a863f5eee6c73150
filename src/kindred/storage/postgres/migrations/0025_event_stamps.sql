-- Each applied batch's events as compact stamps (type, name, time), which an activation
-- reads instead of the body when its histories take events by key alone.
ALTER TABLE event_log ADD COLUMN event_stamps BYTEA;
