-- A flush's checks inside its statements: a count other than the one expected raises
-- serialization_failure (40001), which rolls the transaction back and makes the group
-- run again, as a version check lost to another process always did. The flush and its
-- COMMIT then go to the server together, in one round trip.
CREATE FUNCTION kindred_expect_rows(changed BIGINT, expected BIGINT, what TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF changed <> expected THEN
        RAISE EXCEPTION '%', what USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
