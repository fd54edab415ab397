-- A lifecycle event may only move a job of its own company: the events subject
-- carries the company (NATS permissions confine a tenant to its own), but a job
-- id is global, so the writer compares the event's company with the job's. The
-- lock that reads each job's current attempt gives its company too, in the same
-- round trip.
DROP FUNCTION jetjobs_lock_jobs(jsonb);
CREATE FUNCTION jetjobs_lock_jobs(ids jsonb)
    RETURNS TABLE (
        id text, attempt integer, status job_status, final boolean, kind error_kind, runner text,
        pid bigint, exit_code bigint, reason text, begin_at timestamptz, end_at timestamptz,
        stdout text, stderr text, company text
    )
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    PERFORM jetjobs_lock_job_ids(ids);
    RETURN QUERY
        SELECT j.id, j.attempt, j.status, j.final, j.kind, j.runner, j.pid, j.exit_code, j.reason,
            j.begin_at, j.end_at, j.stdout, j.stderr, j.company
        FROM job j WHERE j.id = ANY(ARRAY(SELECT jsonb_array_elements_text(ids)))
        ORDER BY j.id
        FOR UPDATE;
END
$$;

-- A job row an early event made (no dispatch recorded yet) belongs to that
-- event's company until its dispatch comes; one whose dispatch names another
-- company was made by that other company's events, and the dispatch takes it
-- back. These rows are few and short-lived: the dispatch of a batch finds them
-- through this index instead of reading every job of the batch.
CREATE INDEX job_undispatched ON job (id) WHERE dispatched_at IS NULL;
