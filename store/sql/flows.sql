-- name: save_definition --
-- Keep the latest definition of a flow by company and name, for `flow run NAME`.
INSERT INTO flow_definition (company, name, spec) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (company, name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now();

-- name: definition --
-- The saved definition of a flow.
SELECT spec::text FROM flow_definition WHERE company = $1 AND name = $2;

-- name: definitions_using_template --
-- The names of a company's saved flows with a node that runs template $2.
SELECT name FROM flow_definition
WHERE company = $1 AND spec -> 'nodes' @> jsonb_build_array(jsonb_build_object('template', $2::bigint))
ORDER BY name;

-- name: insert_run --
-- Record a new flow run; nothing when a run of that id exists (a scheduled slot starts once).
INSERT INTO flow_run (id, company, name, spec, status, launched_by)
VALUES ($1, $2, $3, $4::jsonb, 'started', $5)
ON CONFLICT (id) DO NOTHING RETURNING id;

-- name: insert_nodes --
-- Record the nodes of a new run, waiting; $2 is their names.
INSERT INTO flow_node (run_id, node, status)
SELECT $1, node, 'waiting_for_prerequisites' FROM unnest($2::text[]) AS u(node);

-- name: lock_run --
-- A run's name and status, locked for the transaction that changes its nodes,
-- with the transaction that last changed it or its nodes and the current one (see `flow_state`).
SELECT id, company, name, status, changed_in::text, pg_current_xact_id()::text AS this_xact
FROM flow_run WHERE id = $1 FOR UPDATE;

-- name: get_run --
-- A run, not locked.
SELECT id, company, name, spec::text, status, reason, created_at, ended_at FROM flow_run WHERE id = $1;

-- name: list_runs --
-- Runs, newest first, optionally of one company, without those of companies that list actors and give actor $3 none of the roles $4;
-- summaries: no definition, nodes or results, a reason cut to $5 characters, how many nodes stand at each status.
SELECT r.id, r.company, r.name, r.status, left(r.reason, $5) AS reason, r.created_at, r.ended_at,
    (SELECT coalesce(jsonb_object_agg(c.status, c.n), '{}')::text
     FROM (SELECT n.status, count(*) AS n FROM flow_node n WHERE n.run_id = r.id GROUP BY n.status) c) AS node_counts
FROM flow_run r
WHERE ($1::text IS NULL OR r.company = $1)
    AND r.company <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $3 AND ca.role = ANY ($4::text[]))))
ORDER BY r.created_at DESC LIMIT $2;

-- name: nodes --
-- The nodes of a run with the status of their current job. A node ends on its
-- job's outcome event, which the job table may record a moment later: an ended
-- node shows the status that ended it, but one a cancel failed while its job ran
-- shows its job's until that job's outcome comes.
SELECT n.node, n.status, n.round, n.job_id, n.results::text, n.reason,
    CASE WHEN n.job_id IS NULL THEN NULL
        WHEN n.status = 'succeeded' THEN 'processed'
        WHEN n.status = 'failed' AND NOT n.outcome_due THEN 'error'
        ELSE j.status::text END AS job_status
FROM flow_node n LEFT JOIN job j ON j.id = n.job_id WHERE n.run_id = $1 ORDER BY n.node;

-- name: nodes_of_jobs --
-- The flow nodes some jobs run (most jobs run none).
SELECT job_id, run_id, node FROM flow_node WHERE job_id = ANY($1::text[]);

-- name: finish_nodes --
-- Record nodes' outcomes by job id ($2 job ids, $3 statuses, $4 results, $5 reasons):
-- a dispatched node ends as its job did, and a node a cancel failed while its job
-- ran takes its job's success; returns the nodes recorded (one already recorded is left as it is).
UPDATE flow_node n SET status = u.status, results = u.results::jsonb, reason = u.reason, outcome_due = false,
    updated_at = now()
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u (job_id, status, results, reason)
WHERE n.run_id = $1 AND n.job_id = u.job_id
    AND (n.status = 'dispatched' OR (n.outcome_due AND u.status = 'succeeded'))
RETURNING n.node;

-- name: outcomes_came --
-- The jobs $2 of a cancelled run's nodes ended: their nodes wait for no outcome any more.
UPDATE flow_node SET outcome_due = false, updated_at = now()
WHERE run_id = $1 AND job_id = ANY($2::text[]) AND outcome_due;

-- name: dispatch_nodes --
-- Mark waiting nodes dispatched under the job ids of their rounds, all in one statement.
UPDATE flow_node n SET status = 'dispatched', job_id = u.job_id, round = u.round, reason = NULL, updated_at = now()
FROM unnest($2::text[], $3::text[], $4::int[]) AS u (node, job_id, round)
WHERE n.run_id = $1 AND n.node = u.node AND n.status = 'waiting_for_prerequisites';

-- name: skip_nodes --
-- Mark waiting nodes skipped, each saying why ($2 nodes, $3 reasons).
UPDATE flow_node n SET status = 'skipped', reason = u.reason, updated_at = now()
FROM unnest($2::text[], $3::text[]) AS u (node, reason)
WHERE n.run_id = $1 AND n.node = u.node AND n.status = 'waiting_for_prerequisites';

-- name: cancel_nodes --
-- Mark dispatched nodes failed, for a cancel ($2 nodes, $3 why), waiting for their
-- jobs' outcomes: a job that succeeded after all still turns its node succeeded.
UPDATE flow_node SET status = 'failed', reason = $3, outcome_due = true, updated_at = now()
WHERE run_id = $1 AND node = ANY($2::text[]) AND status = 'dispatched';

-- name: reset_nodes --
-- For a retry: a run's failed and skipped nodes wait again; returns them.
UPDATE flow_node SET status = 'waiting_for_prerequisites', reason = NULL, results = '{}', outcome_due = false,
    updated_at = now()
WHERE run_id = $1 AND status IN ('failed', 'skipped')
RETURNING node;

-- name: end_run --
-- Set a run's status (and end time once it ended).
UPDATE flow_run SET status = $2, reason = $3,
    ended_at = CASE WHEN $2 = 'started' THEN NULL ELSE now() END
WHERE id = $1;

-- name: put_outbox --
-- Keep what a step must publish, in order, until it is sent; returns the rows' ids in that order.
INSERT INTO flow_outbox (kind, subject, msg_id, payload)
SELECT u.kind, u.subject, u.msg_id, u.payload
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u (kind, subject, msg_id, payload, n)
ORDER BY u.n
RETURNING id;

-- name: outbox --
-- The oldest work of flow steps left undone, after row $2.
SELECT id, kind, subject, msg_id, payload FROM flow_outbox WHERE id > $2 ORDER BY id LIMIT $1;

-- name: delete_outbox --
-- Forget work done: messages JetStream has stored, jobs asked to stop.
DELETE FROM flow_outbox WHERE id = ANY($1::bigint[]);

-- name: known_jobs --
-- Which of these jobs the store has recorded (their message reached JetStream).
SELECT id FROM job WHERE id = ANY($1::text[]);

-- name: inbox_of_jobs --
-- The outcomes of jobs $1 the events projection recorded and no step took yet (not locked: a step
-- holding them waits for the run's lock, and then finds their nodes ended).
SELECT payload FROM flow_inbox WHERE job_id = ANY($1::text[]) ORDER BY id;

-- name: take_inbox --
-- The oldest outcomes due, locked for one step; another orchestrator takes others.
SELECT id, payload FROM flow_inbox WHERE not_before <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED;

-- name: delete_inbox --
-- Outcomes whose step committed.
DELETE FROM flow_inbox WHERE id = ANY($1::bigint[]);

-- name: defer_inbox --
-- Outcomes whose step failed: try again later, waiting longer each time (at most a minute).
UPDATE flow_inbox SET tries = tries + 1, not_before = now() + least(60, 2 ^ tries) * interval '1 second'
WHERE id = ANY($1::bigint[]);

-- name: inbox_counts --
-- How many outcomes wait in the flow inbox, and how many of them failed their step.
SELECT count(*) AS waiting, count(*) FILTER (WHERE tries > 0) AS deferred FROM flow_inbox;
