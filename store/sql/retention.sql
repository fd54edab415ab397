-- Queries of retention: removing final history older than a horizon ($1), a batch
-- ($2 rows) per statement, oldest first, and counting what would go. Each block
-- starts with `-- name: <name> --` and a one-line comment saying what it does.
-- A prune and its count share their conditions: keep them alike.
--
-- A flow run keeps its jobs as long as it is kept itself (in progress, or ended
-- after the horizon). Its node names the job of its current round; the jobs of
-- the node's earlier rounds no node names any more, so the flow's jobs made
-- since a kept run began are kept (its `spanning` runs, kept and begun before
-- the horizon: only those can have made a job older than it). A job names the
-- flow that launched it in `launched_by`, as 'flow:' and the flow's name
-- (`contracts.flows.LAUNCHER`).

-- name: mark_horizon --
-- Remember the newest horizon history is pruned to, before any of it goes (see `pruned_before`).
INSERT INTO retention_horizon (pruned_before) VALUES ($1)
ON CONFLICT (only_row) DO UPDATE
SET pruned_before = greatest(retention_horizon.pruned_before, EXCLUDED.pruned_before);

-- name: pruned_before --
-- The newest horizon history was pruned to: a message older than it, of a job with no row, is of a pruned job; null before the first prune.
SELECT pruned_before FROM retention_horizon;

-- name: now --
-- PostgreSQL's clock, which horizons are counted back from: it dates the rows a prune compares.
SELECT now();

-- name: try_lock --
-- Take the retention lock on this session, so one store prunes at a time; false when another holds it.
SELECT pg_try_advisory_lock($1);

-- name: prune_jobs --
-- Remove a batch of final jobs older than the horizon, none of a flow run still kept, with their attempts, events, artifacts, deadline and sealed secret values (and the values sealed before the horizon for a job never recorded, its message not queued); rows a writer holds are left for later.
WITH spanning AS MATERIALIZED (
    SELECT company, 'flow:' || name AS launched_by, min(created_at) AS since
    FROM flow_run
    WHERE created_at < $1 AND (status = 'started' OR ended_at >= $1)
    GROUP BY 1, 2
), doomed AS (
    SELECT j.id FROM job j
    WHERE j.created_at < $1 AND j.final AND j.updated_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM flow_node n JOIN flow_run r ON r.id = n.run_id
          WHERE n.job_id = j.id AND (r.status = 'started' OR r.ended_at >= $1)
      )
      AND NOT EXISTS (
          SELECT 1 FROM spanning k
          WHERE k.company = j.company AND k.launched_by = j.launched_by AND k.since <= j.created_at
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
), secrets AS (
    DELETE FROM job_secret WHERE job_id IN (SELECT id FROM doomed)
), strays AS (
    DELETE FROM job_secret s
    WHERE s.created_at < $1 AND NOT EXISTS (SELECT 1 FROM job j WHERE j.id = s.job_id)
), jobs AS (
    DELETE FROM job WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM attempts) AS attempts,
    (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM artifacts) AS artifacts,
    (SELECT count(*) FROM deadlines) AS deadlines;

-- name: count_jobs --
-- How many final jobs older than the horizon, none of a flow run still kept, and rows of theirs, a prune would remove.
WITH spanning AS MATERIALIZED (
    SELECT company, 'flow:' || name AS launched_by, min(created_at) AS since
    FROM flow_run
    WHERE created_at < $1 AND (status = 'started' OR ended_at >= $1)
    GROUP BY 1, 2
), doomed AS (
    SELECT j.id FROM job j
    WHERE j.created_at < $1 AND j.final AND j.updated_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM flow_node n JOIN flow_run r ON r.id = n.run_id
          WHERE n.job_id = j.id AND (r.status = 'started' OR r.ended_at >= $1)
      )
      AND NOT EXISTS (
          SELECT 1 FROM spanning k
          WHERE k.company = j.company AND k.launched_by = j.launched_by AND k.since <= j.created_at
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

-- name: prune_templates --
-- Remove a batch of templates deleted before the horizon that nothing left names: no job, slot record, flow run or saved flow (their credential assignments go with them). A flow run that names one began before its deletion: a deleted template runs in no new one.
WITH doomed AS (
    SELECT t.id FROM runtemplate t JOIN company c ON c.id = t.company_id
    WHERE t.deleted_at < $1
      AND NOT EXISTS (SELECT 1 FROM job j WHERE j.template_id = t.id)
      AND NOT EXISTS (SELECT 1 FROM schedule_slot s WHERE s.template_id = t.id)
      AND NOT EXISTS (
          SELECT 1 FROM flow_run r
          WHERE r.created_at < t.deleted_at AND r.company = c.code
            AND r.spec -> 'nodes' @> jsonb_build_array(jsonb_build_object('template', t.id))
      )
      AND NOT EXISTS (
          SELECT 1 FROM flow_definition d
          WHERE d.company = c.code AND d.spec -> 'nodes' @> jsonb_build_array(jsonb_build_object('template', t.id))
      )
    ORDER BY t.deleted_at
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
), templates AS (
    DELETE FROM runtemplate WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*) AS templates FROM templates;

-- name: count_templates --
-- How many deleted templates a prune would remove: those whose jobs, slot records and flow runs all go in the same prune.
WITH spanning AS MATERIALIZED (
    SELECT company, 'flow:' || name AS launched_by, min(created_at) AS since
    FROM flow_run
    WHERE created_at < $1 AND (status = 'started' OR ended_at >= $1)
    GROUP BY 1, 2
)
SELECT count(*) AS templates FROM runtemplate t JOIN company c ON c.id = t.company_id
WHERE t.deleted_at < $1
  AND NOT EXISTS (
      SELECT 1 FROM job j
      WHERE j.template_id = t.id
        AND NOT (
            j.created_at < $1 AND j.final AND j.updated_at < $1
            AND NOT EXISTS (
                SELECT 1 FROM flow_node n JOIN flow_run r ON r.id = n.run_id
                WHERE n.job_id = j.id AND (r.status = 'started' OR r.ended_at >= $1)
            )
            AND NOT EXISTS (
                SELECT 1 FROM spanning k
                WHERE k.company = j.company AND k.launched_by = j.launched_by AND k.since <= j.created_at
            )
        )
  )
  AND NOT EXISTS (
      SELECT 1 FROM schedule_slot s
      WHERE s.template_id = t.id
        AND NOT (
            s.recorded_at < $1
            AND NOT EXISTS (SELECT 1 FROM job j WHERE j.id = s.job_id AND NOT j.final)
            AND NOT EXISTS (SELECT 1 FROM flow_run r WHERE r.id = s.flow_run AND r.status = 'started')
        )
  )
  AND NOT EXISTS (
      SELECT 1 FROM flow_run r
      WHERE r.created_at < t.deleted_at AND r.company = c.code
        AND r.spec -> 'nodes' @> jsonb_build_array(jsonb_build_object('template', t.id))
        AND (r.status = 'started' OR r.ended_at >= $1)
  )
  AND NOT EXISTS (
      SELECT 1 FROM flow_definition d
      WHERE d.company = c.code AND d.spec -> 'nodes' @> jsonb_build_array(jsonb_build_object('template', t.id))
  );

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
