-- Queries of retention: removing final history older than a horizon ($1), a batch
-- ($2 rows) per statement, oldest first, and counting what would go. Each block
-- starts with `-- name: <name> --` and a one-line comment saying what it does.
-- A prune and its count share their conditions: keep them alike.

-- name: try_lock --
-- Take the retention lock on this session, so one store prunes at a time; false when another holds it.
SELECT pg_try_advisory_lock($1);

-- name: prune_jobs --
-- Remove a batch of final jobs older than the horizon, with their attempts, events, artifacts and deadline; rows a writer holds are left for later.
WITH doomed AS (
    SELECT j.id FROM job j
    WHERE j.created_at < $1 AND j.final AND j.updated_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM flow_node n JOIN flow_run r ON r.id = n.run_id
          WHERE n.job_id = j.id AND (r.status = 'started' OR r.ended_at >= $1)
      )
    ORDER BY j.created_at
    LIMIT $2
    FOR UPDATE OF j SKIP LOCKED
), attempts AS (
    DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), events AS (
    DELETE FROM job_event WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), artifacts AS (
    DELETE FROM artifact WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), deadlines AS (
    DELETE FROM job_dispatch WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
), jobs AS (
    DELETE FROM job WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM attempts) AS attempts,
    (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM artifacts) AS artifacts,
    (SELECT count(*) FROM deadlines) AS deadlines;

-- name: count_jobs --
-- How many final jobs older than the horizon, and rows of theirs, a prune would remove.
WITH doomed AS (
    SELECT j.id FROM job j
    WHERE j.created_at < $1 AND j.final AND j.updated_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM flow_node n JOIN flow_run r ON r.id = n.run_id
          WHERE n.job_id = j.id AND (r.status = 'started' OR r.ended_at >= $1)
      )
)
SELECT (SELECT count(*) FROM doomed) AS jobs,
    (SELECT count(*) FROM job_attempt WHERE job_id IN (SELECT id FROM doomed)) AS attempts,
    (SELECT count(*) FROM job_event WHERE job_id IN (SELECT id FROM doomed)) AS events,
    (SELECT count(*) FROM artifact WHERE job_id IN (SELECT id FROM doomed)) AS artifacts,
    (SELECT count(*) FROM job_dispatch WHERE job_id IN (SELECT id FROM doomed)) AS deadlines;

-- name: prune_flow_runs --
-- Remove a batch of flow runs that ended before the horizon, with their nodes.
WITH doomed AS (
    SELECT id FROM flow_run
    WHERE status <> 'started' AND ended_at < $1
    ORDER BY ended_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), nodes AS (
    DELETE FROM flow_node WHERE run_id IN (SELECT id FROM doomed) RETURNING 1
), runs AS (
    DELETE FROM flow_run WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM runs) AS flow_runs, (SELECT count(*) FROM nodes) AS flow_nodes;

-- name: count_flow_runs --
-- How many flow runs that ended before the horizon, and nodes of theirs, a prune would remove.
WITH doomed AS (SELECT id FROM flow_run WHERE status <> 'started' AND ended_at < $1)
SELECT (SELECT count(*) FROM doomed) AS flow_runs,
    (SELECT count(*) FROM flow_node WHERE run_id IN (SELECT id FROM doomed)) AS flow_nodes;

-- name: prune_slots --
-- Remove a batch of slot records older than the horizon, but none whose job or flow run is still going.
WITH doomed AS (
    SELECT s.template_id, s.slot FROM schedule_slot s
    WHERE s.recorded_at < $1
      AND NOT EXISTS (SELECT 1 FROM job j WHERE j.id = s.job_id AND NOT j.final)
      AND NOT EXISTS (SELECT 1 FROM flow_run r WHERE r.id = s.flow_run AND r.status = 'started')
    ORDER BY s.recorded_at
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
), slots AS (
    DELETE FROM schedule_slot s USING doomed d
    WHERE s.template_id = d.template_id AND s.slot = d.slot
    RETURNING 1
)
SELECT count(*) AS slots FROM slots;

-- name: count_slots --
-- How many slot records a prune would remove.
SELECT count(*) AS slots FROM schedule_slot s
WHERE s.recorded_at < $1
  AND NOT EXISTS (SELECT 1 FROM job j WHERE j.id = s.job_id AND NOT j.final)
  AND NOT EXISTS (SELECT 1 FROM flow_run r WHERE r.id = s.flow_run AND r.status = 'started');

-- name: prune_dead_letters --
-- Remove a batch of dead letters recorded for messages that died before the horizon.
WITH doomed AS (
    SELECT id FROM dead_letter WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED
), letters AS (
    DELETE FROM dead_letter WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*) AS dead_letters FROM letters;

-- name: count_dead_letters --
-- How many dead letters a prune would remove.
SELECT count(*) AS dead_letters FROM dead_letter WHERE at < $1;

-- name: prune_audit --
-- Remove a batch of audit entries written before the audit horizon.
WITH doomed AS (
    SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED
), entries AS (
    DELETE FROM audit_log WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*) AS audit_entries FROM entries;

-- name: count_audit --
-- How many audit entries a prune would remove.
SELECT count(*) AS audit_entries FROM audit_log WHERE at < $1;
