-- One definition of the per-job-id lock (advisory key space 74) for every writer
-- of a job: the dispatch writer takes it alone (`lock_job_ids`), the events
-- writer through `jetjobs_lock_jobs`, which until now spelled it out again.
CREATE FUNCTION jetjobs_lock_job_ids(ids jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM count(pg_advisory_xact_lock(74, hashtext(u.id)))
    FROM (SELECT DISTINCT t.id FROM jsonb_array_elements_text(ids) AS t(id) ORDER BY t.id) AS u;
END
$$;

CREATE OR REPLACE FUNCTION jetjobs_lock_jobs(ids jsonb)
    RETURNS TABLE (
        id text, attempt integer, status job_status, final boolean, kind error_kind, runner text,
        pid bigint, exit_code bigint, reason text, begin_at timestamptz, end_at timestamptz,
        stdout text, stderr text
    )
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    PERFORM jetjobs_lock_job_ids(ids);
    RETURN QUERY
        SELECT j.id, j.attempt, j.status, j.final, j.kind, j.runner, j.pid, j.exit_code, j.reason,
            j.begin_at, j.end_at, j.stdout, j.stderr
        FROM job j WHERE j.id = ANY(ARRAY(SELECT jsonb_array_elements_text(ids)))
        ORDER BY j.id
        FOR UPDATE;
END
$$;
