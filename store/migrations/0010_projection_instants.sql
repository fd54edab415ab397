-- The projection sends its rows as one JSON document per statement (asyncpg
-- encodes a document far more cheaply than one array element at a time), and
-- JSON has no timestamp: instants travel as whole microseconds since the Unix
-- epoch and become timestamptz here, exactly (in two steps, so no float loses a
-- microsecond however far the year). Inlined by the planner.
CREATE FUNCTION jetjobs_instant(micros bigint) RETURNS timestamptz
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + (micros / 1000000) * interval '1 second'
        + (micros % 1000000) * interval '1 microsecond' $$;
