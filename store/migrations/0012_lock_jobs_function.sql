-- An events batch locks its jobs' ids, then reads and locks their rows, in one
-- round trip. Each statement of a PL/pgSQL function takes its own snapshot (READ
-- COMMITTED), so the rows are read after the id locks are held and include a
-- job whose dispatch committed while this batch waited for them.
CREATE FUNCTION jetjobs_lock_jobs(ids jsonb)
    RETURNS TABLE (
        id text, attempt integer, status job_status, final boolean, kind error_kind, runner text,
        pid bigint, exit_code bigint, reason text, begin_at timestamptz, end_at timestamptz,
        stdout text, stderr text
    )
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    PERFORM count(pg_advisory_xact_lock(74, hashtext(u.id)))
    FROM (SELECT DISTINCT t.id FROM jsonb_array_elements_text(ids) AS t(id) ORDER BY t.id) AS u;
    RETURN QUERY
        SELECT j.id, j.attempt, j.status, j.final, j.kind, j.runner, j.pid, j.exit_code, j.reason,
            j.begin_at, j.end_at, j.stdout, j.stderr
        FROM job j WHERE j.id = ANY(ARRAY(SELECT jsonb_array_elements_text(ids)))
        ORDER BY j.id
        FOR UPDATE;
END
$$;
