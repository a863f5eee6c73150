-- Audience memberships in a table of their own rather than in the profile document, so
-- that a backfill enters and removes members with set-based SQL (audiences/sql.py)
-- without rewriting documents. Profiles read from the store carry them as before.
-- Keyed by profile first (read with their profile, written together); the index serves
-- the backfill, which walks one audience's members.
CREATE TABLE audience_members (
    audience_id BIGINT NOT NULL,
    mpid BIGINT NOT NULL,
    name TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    PRIMARY KEY (mpid, audience_id)
);
CREATE INDEX audience_members_by_audience ON audience_members (audience_id);
-- Criteria read created_ms from its column: a merge may have moved it in the document
-- only (saves now write both).
UPDATE profiles SET created_ms = (doc ->> 'created_ms')::bigint
    WHERE created_ms IS DISTINCT FROM (doc ->> 'created_ms')::bigint;
-- A backfill page's bounds, read from the index alone.
CREATE INDEX profiles_by_scope_mpid ON profiles (scope, mpid);
INSERT INTO audience_members (audience_id, mpid, name, since_ms, expires_ms)
    SELECT m.key::bigint, p.mpid, m.value ->> 'name', (m.value ->> 'since_ms')::bigint,
           (m.value ->> 'expires_ms')::bigint
    FROM profiles AS p, jsonb_each(p.doc -> 'memberships') AS m;
UPDATE profiles SET doc = doc - 'memberships' WHERE doc ? 'memberships';

-- Value tests for audience criteria compiled to SQL (audiences/sql.py): the text,
-- number and instant of a stored JSON value by the rules of audiences/evaluate.py.

-- Lower case as Python's str.lower() makes it (full Unicode mappings, the final sigma):
-- ICU's root locale does that; without ICU, the database's own rules (closest available).
DO $$
DECLARE
    chosen text := CASE WHEN EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')
        THEN ' COLLATE "und-x-icu"' ELSE '' END;
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION kindred_text(v jsonb) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
            SELECT CASE jsonb_typeof(v)
                WHEN 'string' THEN lower((v #>> '{}')%s) ELSE v #>> '{}' END
        $body$
    $f$, chosen);
END
$$;

-- A JSON number, or a string holding a plain numeral (evaluate.NUMERAL).
CREATE FUNCTION kindred_number(v jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'number' THEN (v #>> '{}')::double precision
        WHEN 'string' THEN CASE WHEN (v #>> '{}') ~ '^([+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,2})?)$'
            THEN (v #>> '{}')::double precision END
    END
$$;

-- Epoch milliseconds: a number (truncated), or an ISO date or date-time (evaluate.ISO_INSTANT;
-- UTC without an offset); NULL for anything else, a day that does not exist included.
CREATE FUNCTION kindred_instant(v jsonb) RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    number double precision := kindred_number(v);
    value text;
BEGIN
    IF number IS NOT NULL THEN
        RETURN trunc(number);
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    value := v #>> '{}';
    IF value !~ '^([0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?)$' THEN
        RETURN NULL;
    END IF;
    IF length(value) > 10 AND value ~ '(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
        RETURN floor(extract(epoch FROM value::timestamptz) * 1000);
    END IF;
    RETURN floor(extract(epoch FROM value::timestamp AT TIME ZONE 'UTC') * 1000);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
