-- Audience memberships in a table of their own rather than in the profile document, so
-- that a backfill enters and removes members with set-based SQL (audiences/sql.py)
-- without rewriting documents. Profiles read from the store carry them as before.
-- Keyed by profile first (read with their profile, written together); the index serves
-- the backfill, which walks one audience's members.
-- (SQLite tests stored values with functions registered on each connection:
-- storage/sqlite/functions.py.)
CREATE TABLE audience_members (
    audience_id INTEGER NOT NULL,
    mpid INTEGER NOT NULL,
    name TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (mpid, audience_id)
) WITHOUT ROWID;
CREATE INDEX audience_members_by_audience ON audience_members (audience_id);
-- Criteria read created_ms from its column: a merge may have moved it in the document
-- only (saves now write both).
UPDATE profiles SET created_ms = doc ->> '$.created_ms'
    WHERE created_ms IS NOT doc ->> '$.created_ms';
-- A backfill page's bounds, read from the index alone.
CREATE INDEX profiles_by_scope_mpid ON profiles (scope, mpid);
INSERT INTO audience_members (audience_id, mpid, name, since_ms, expires_ms)
    SELECT CAST(m.key AS INTEGER), p.mpid, m.value ->> '$.name', m.value ->> '$.since_ms',
           m.value ->> '$.expires_ms'
    FROM profiles AS p, json_each(p.doc, '$.memberships') AS m;
UPDATE profiles SET doc = json_remove(doc, '$.memberships')
    WHERE doc -> '$.memberships' IS NOT NULL;
