-- Value tests for audience criteria compiled to SQL (audiences/sql.py): the text,
-- number and instant of a stored JSON value by the rules of audiences/evaluate.py.

CREATE FUNCTION kindred_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v) WHEN 'string' THEN lower(v #>> '{}') ELSE v #>> '{}' END
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
