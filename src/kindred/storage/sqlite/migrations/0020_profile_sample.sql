-- The audience estimator (AUD-7) reads a stable uniform sample of a scope's profiles: those
-- whose sample key, a hash of the MPID, is smallest. The key is computed by the database
-- from the MPID (audiences/sample.py: sample_key, the same arithmetic, each product below
-- 2^62), so every profile has it from its insert on and it leaves with the profile; the
-- index reads a sample of any size as a range.
ALTER TABLE profiles ADD COLUMN sample_key INTEGER GENERATED ALWAYS AS (
    ((((mpid % 2147483647) + 2147483647) % 2147483647 * 1327217885 + 1013904223)
        % 2147483647 * 1103515245 + 12345) % 2147483629
) VIRTUAL;
CREATE INDEX profiles_by_scope_sample ON profiles (scope, sample_key);
