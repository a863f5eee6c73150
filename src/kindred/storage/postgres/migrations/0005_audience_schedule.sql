-- When time alone may next change a profile's audience memberships (AUD-5); the
-- scheduler claims the profiles that are due.
ALTER TABLE profiles ADD COLUMN audience_due_ms BIGINT;
CREATE INDEX profiles_by_audience_due ON profiles (audience_due_ms)
    WHERE audience_due_ms IS NOT NULL;
