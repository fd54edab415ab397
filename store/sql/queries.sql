-- Every query the store runs. Each block starts with `-- name: <name> --`
-- and one line saying what it does; store/queries.py has one method per block.

-- name: lock_migrations --
-- Wait for the migration lock, so stores starting together migrate one after another.
SELECT pg_advisory_lock($1);

-- name: unlock_migrations --
-- Let the next store migrate.
SELECT pg_advisory_unlock($1);

-- name: lock_board --
-- Let one store at a time write the templates board, until its transaction ends: each
-- writes what it read under the lock, so the last write is of the latest state.
SELECT pg_advisory_xact_lock($1);

-- name: create_migrations_table --
-- The ledger of applied migrations (created by the first store that starts).
CREATE TABLE IF NOT EXISTS jetjobs_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations --
-- Versions already applied, oldest first.
SELECT version FROM jetjobs_migrations ORDER BY version;

-- name: record_migration --
-- Note that one migration has been applied.
INSERT INTO jetjobs_migrations (version, name) VALUES ($1, $2);

-- name: enum_labels --
-- The labels of one Postgres enum type, in declaration order.
SELECT e.enumlabel
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
WHERE t.typname = $1
ORDER BY e.enumsortorder;

-- name: insert_company --
-- Create a company; returns nothing when the code is taken.
INSERT INTO company (code, name, enabled, paused) VALUES ($1, $2, $3, $4)
ON CONFLICT (code) DO NOTHING
RETURNING id, code, name, enabled, paused;

-- name: list_companies --
-- Companies by code, optionally just one, without those that list actors and give actor $2 none of the roles $3; those after code $6 when given (a cursor), rows $4 on, at most $5 of them.
SELECT id, code, name, enabled, paused FROM company
WHERE ($1::text IS NULL OR code = $1)
    AND ($6::text IS NULL OR code > $6)
    AND code <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $2 AND ca.role = ANY ($3::text[]))))
ORDER BY code
OFFSET $4 LIMIT $5;

-- name: company_by_code --
-- One company, to resolve a code a user typed.
SELECT id, code, name, enabled, paused FROM company WHERE code = $1;

-- name: upsert_app --
-- Import an application, or update the one with the same uuid in place.
INSERT INTO application AS a
    (uuid, name, description, executable, cmdparams, environment, ociimage, homepage, tags, document)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb)
ON CONFLICT (uuid) DO UPDATE SET
    name = EXCLUDED.name,
    description = EXCLUDED.description,
    executable = EXCLUDED.executable,
    cmdparams = EXCLUDED.cmdparams,
    environment = EXCLUDED.environment,
    ociimage = EXCLUDED.ociimage,
    homepage = EXCLUDED.homepage,
    tags = EXCLUDED.tags,
    document = EXCLUDED.document,
    updated_at = now()
RETURNING id, uuid, name, description, executable, cmdparams, environment, ociimage, homepage, tags,
    updated_at, (xmax = 0) AS created;

-- name: list_apps --
-- Applications by name and id; with a company id, only those its templates use; those after name $4 and id $5 when given (a cursor), rows $2 on, at most $3 of them.
SELECT a.id, a.uuid, a.name, a.description, a.executable, a.cmdparams, a.environment, a.ociimage,
    a.homepage, a.tags, a.updated_at, a.artifacts, a.exit_codes
FROM application a
WHERE ($1::bigint IS NULL
        OR EXISTS (SELECT 1 FROM runtemplate t WHERE t.app_id = a.id AND t.company_id = $1))
    AND ($4::text IS NULL OR (a.name, a.id) > ($4, $5::bigint))
ORDER BY a.name, a.id
OFFSET $2 LIMIT $3;

-- name: app_by_id --
-- One application by its numeric id.
SELECT id, uuid, name, description, executable, cmdparams, environment, ociimage, homepage, tags, updated_at,
    artifacts, exit_codes
FROM application WHERE id = $1;

-- name: app_by_uuid --
-- One application by its uuid.
SELECT id, uuid, name, description, executable, cmdparams, environment, ociimage, homepage, tags, updated_at,
    artifacts, exit_codes
FROM application WHERE uuid = $1;

-- name: insert_template --
-- Create a run template; returns nothing when the company already has a live one of that name.
INSERT INTO runtemplate
    (name, app_id, company_id, interv, cron, timezone, env, pool,
     timeout, timeout_ack, timeout_result, retries, active,
     overlap, misfire, catch_up_limit, jitter, paused, flow, scheduled_since)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, now())
ON CONFLICT (company_id, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id;

-- name: update_template --
-- Replace a run template's spec; returns nothing when the id is unknown. Made active
-- again or given a new schedule, it is on the schedule from now (the right-hand sides
-- read the row as it was).
UPDATE runtemplate SET
    name = $2, app_id = $3, company_id = $4, interv = $5, cron = $6, timezone = $7, env = $8::jsonb,
    pool = $9, timeout = $10, timeout_ack = $11, timeout_result = $12, retries = $13, active = $14,
    overlap = $15, misfire = $16, catch_up_limit = $17, jitter = $18, paused = $19, flow = $20,
    updated_at = now(),
    scheduled_since = CASE
        WHEN NOT active OR (interv, cron, timezone) IS DISTINCT FROM ($5, $6, $7) THEN now()
        ELSE scheduled_since
    END
WHERE id = $1
RETURNING id;

-- name: drop_foreign_credentials --
-- Stop template $1 using the credential sets of companies other than its own ($2), returning their names: a template moved to another company leaves its old company's sets, which that company must stay free to remove.
DELETE FROM template_credential tc USING credential c
WHERE tc.template_id = $1 AND tc.credential_id = c.id AND c.company_id <> $2
RETURNING c.name;

-- name: lock_template --
-- Lock one template for a read-modify-write; returns nothing when the id is unknown.
SELECT id FROM runtemplate WHERE id = $1 FOR UPDATE;

-- name: template_id_by_name --
-- The id of a company's live (not deleted) template of a given name (to name it in a conflict).
SELECT id FROM runtemplate WHERE company_id = $1 AND name = $2 AND deleted_at IS NULL;

-- name: templates_with_secret_values --
-- Ids of the templates whose env gives a value to a field their application declares secret (those `seal_held` seals), found without reading every template.
SELECT t.id FROM runtemplate t JOIN application a ON a.id = t.app_id
WHERE EXISTS (
    SELECT 1 FROM jsonb_each_text(t.env) e
    WHERE e.value <> '' AND coalesce((a.environment -> e.key ->> 'secret')::boolean, false))
ORDER BY t.id;

-- name: templates --
-- Templates with their company and application (none for a flow template) and the names of their sealed secret fields, by company code, name and id, filtered by ids, company code and application id; with an actor $4, without the companies that list actors and give it none of the roles $5; those after company code $9, name $10 and id $11 when given (a cursor; the first condition on the code alone lets the company index skip what comes before); rows $6 on, at most $7 of them (null: from the first, all); $8 true: only deleted ones, false: only live ones, null: both.
SELECT t.id, t.name, t.app_id, t.interv, t.cron, t.timezone, t.env, t.pool,
    t.timeout, t.timeout_ack, t.timeout_result, t.retries, t.active, t.updated_at,
    t.overlap, t.misfire, t.catch_up_limit, t.jitter, t.paused, t.flow, t.scheduled_since,
    c.code AS company, c.enabled AS company_enabled, c.paused AS company_paused,
    a.uuid, a.name AS app_name, a.description, a.executable, a.cmdparams, a.environment,
    a.ociimage, a.homepage, a.tags, a.updated_at AS app_updated_at, t.deleted_at,
    ARRAY(SELECT s.name FROM template_secret s WHERE s.template_id = t.id ORDER BY s.name) AS sealed_names
FROM runtemplate t
JOIN company c ON c.id = t.company_id
LEFT JOIN application a ON a.id = t.app_id
WHERE ($1::bigint[] IS NULL OR t.id = ANY($1))
    AND ($8::boolean IS NULL OR (t.deleted_at IS NOT NULL) = $8)
    AND ($2::text IS NULL OR c.code = $2)
    AND ($3::bigint IS NULL OR t.app_id = $3)
    AND ($9::text IS NULL OR (c.code >= $9 AND (c.code, t.name, t.id) > ($9, $10::text, $11::bigint)))
    AND ($4::text IS NULL OR c.code <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $4 AND ca.role = ANY ($5::text[])))))
ORDER BY c.code, t.name, t.id
OFFSET $6 LIMIT $7;

-- name: record_dispatches --
-- Record job messages: insert each job, dated (`created_at`, the order of the newest-first lists) when it was dispatched, not when this batch is written (a store catching up writes hours of jobs in one transaction), though never later than now; or fill in the empty descriptive columns of one an early event created (never its status); open the attempt a message starts when it is the job's current one; keep each message's stream position, take-by time and `timeout` for the reaper (a later attempt replaces an earlier one, and the deadline of a retry of the earlier one). Returns, per company ('unknown' for one the store does not have), the jobs new to the projection: their first take-by row (only the projection writes them, so a job the API recorded first counts here, once; a redelivery or a replay does not).
-- $1: [[id, company, pool, template_id, app_id, attempt, argv, scheduled_at µs, dispatched_at µs, launched_by], …]
-- $2: [[id, attempt, stream_seq, deadline µs, timeout s], …] of jobs in $1
WITH message AS (
    SELECT r ->> 0 AS id, r ->> 1 AS company, r ->> 2 AS pool, (r ->> 3)::bigint AS template_id,
        (r ->> 4)::bigint AS app_id, (r ->> 5)::integer AS attempt, r -> 6 AS argv,
        jetjobs_instant((r ->> 7)::bigint) AS scheduled_at, jetjobs_instant((r ->> 8)::bigint) AS dispatched_at,
        r ->> 9 AS launched_by
    FROM jsonb_array_elements($1::jsonb) AS u(r)
), recorded AS (
    INSERT INTO job AS j
        (id, company, pool, template_id, app_id, status, attempt, argv, scheduled_at, dispatched_at, launched_by,
        created_at)
    SELECT id, company, pool, template_id, app_id, 'dispatched', attempt, argv, scheduled_at, dispatched_at,
        launched_by, least(dispatched_at, now())
    FROM message
    ON CONFLICT (id) DO UPDATE SET
        created_at = least(j.created_at, EXCLUDED.created_at),
        pool = coalesce(j.pool, EXCLUDED.pool),
        template_id = coalesce(j.template_id, EXCLUDED.template_id),
        app_id = coalesce(j.app_id, EXCLUDED.app_id),
        argv = coalesce(j.argv, EXCLUDED.argv),
        scheduled_at = coalesce(j.scheduled_at, EXCLUDED.scheduled_at),
        dispatched_at = coalesce(j.dispatched_at, EXCLUDED.dispatched_at),
        launched_by = coalesce(j.launched_by, EXCLUDED.launched_by),
        updated_at = now()
    WHERE j.dispatched_at IS NULL
    RETURNING j.id, j.attempt
), opened AS (
    INSERT INTO job_attempt (job_id, attempt, status)
    SELECT recorded.id, recorded.attempt, 'dispatched'
    FROM recorded JOIN message ON message.id = recorded.id AND message.attempt = recorded.attempt
    ON CONFLICT (job_id, attempt) DO NOTHING
), deadlines AS (
    INSERT INTO job_dispatch AS d (job_id, attempt, stream_seq, deadline, timeout)
    SELECT r ->> 0, (r ->> 1)::integer, (r ->> 2)::bigint, jetjobs_instant((r ->> 3)::bigint), (r ->> 4)::float8
    FROM jsonb_array_elements($2::jsonb) AS u(r)
    WHERE r ->> 0 IN (SELECT id FROM message)
    ON CONFLICT (job_id) DO UPDATE SET
        attempt = EXCLUDED.attempt, stream_seq = EXCLUDED.stream_seq, deadline = EXCLUDED.deadline,
        timeout = EXCLUDED.timeout, retry_attempt = NULL, retry_deadline = NULL
    WHERE d.attempt <= EXCLUDED.attempt
    RETURNING d.job_id, d.xmax = 0 AS inserted
)
SELECT coalesce(c.code, 'unknown') AS company, count(*) AS jobs
FROM deadlines JOIN message m ON m.id = deadlines.job_id LEFT JOIN company c ON c.code = m.company
WHERE deadlines.inserted
GROUP BY 1;

-- name: reclaim_jobs --
-- Take back, for the company its dispatch names, a job row that events of another company made before the dispatch came (a job id is global, a company's subjects are its own): the row starts again as dispatched, and what that company left (attempts, kept events, artifacts) goes. Returns each job taken back with the company that made it. $1: [[id, company, attempt], …]
WITH message AS (
    SELECT r ->> 0 AS id, r ->> 1 AS company, (r ->> 2)::integer AS attempt
    FROM jsonb_array_elements($1::jsonb) AS u(r)
), taken AS (
    SELECT j.id, j.company AS made_by FROM job j JOIN message m ON m.id = j.id
    WHERE j.dispatched_at IS NULL AND j.company <> m.company
    FOR UPDATE OF j
), reset AS (
    UPDATE job j SET company = m.company, status = 'dispatched', attempt = m.attempt, final = false, kind = NULL,
        runner = NULL, pid = NULL, exit_code = NULL, reason = NULL, begin_at = NULL, end_at = NULL, stdout = NULL,
        stderr = NULL, updated_at = now()
    FROM message m WHERE j.id = m.id AND j.id IN (SELECT id FROM taken)
), attempts AS (
    DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM taken)
), events AS (
    DELETE FROM job_event WHERE job_id IN (SELECT id FROM taken)
), artifacts AS (
    DELETE FROM artifact WHERE job_id IN (SELECT id FROM taken)
)
SELECT id, made_by FROM taken;

-- name: lock_job_ids --
-- Serialize writers per job id, even for jobs no row exists for yet (`jetjobs_lock_job_ids`, as migration 15 left it: key space 74 is the store's, ids in byte order); $1 is a JSON array of ids.
SELECT jetjobs_lock_job_ids($1::jsonb);

-- name: lock_jobs --
-- Hold each job id until commit (see `lock_job_ids`), then the current attempt and the company of each job, its row locked until commit too, so concurrent writers apply events in turn; $1 is a JSON array of ids (`jetjobs_lock_jobs`, as migration 25 left it: one round trip).
SELECT id, attempt, status, final, kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr, company
FROM jetjobs_lock_jobs($1::jsonb);

-- name: record_events --
-- Project a batch of lifecycle events: move jobs and attempts as the fold decided, keep every event (a redelivered one once), give each next attempt an error announced (most batches announce none) its take-by time for the reaper (its message's `timeout` from when it is due), and put the outcomes of jobs that run a dispatched flow node, or one a cancel failed while its job ran (most run none), into the flow inbox, telling the orchestrators once per batch.
-- $1: [[job_id, attempt, status, kind, runner, pid, exit_code, reason, begin µs, end µs, stdout, stderr, results,
--     company (when this is the job's current attempt, else null), final], …]
-- $2: the `from>to` moves the guards allow: an older attempt or a backward status changes nothing, results once written stay
-- $3: [[job_id, attempt, status, at µs, stale, flow outcome], …]; $4: the events' JSON, in the same order
-- $6: [[job_id, attempt, due µs], …]: jobs whose current attempt ended in an error with a next attempt due then
WITH state AS (
    SELECT r ->> 0 AS job_id, (r ->> 1)::integer AS attempt, (r ->> 2)::job_status AS status,
        (r ->> 3)::error_kind AS kind, r ->> 4 AS runner, (r ->> 5)::bigint AS pid, (r ->> 6)::bigint AS exit_code,
        r ->> 7 AS reason, jetjobs_instant((r ->> 8)::bigint) AS begin_at,
        jetjobs_instant((r ->> 9)::bigint) AS end_at, r ->> 10 AS stdout, r ->> 11 AS stderr, r -> 12 AS results,
        r ->> 13 AS company, (r ->> 14)::boolean AS final
    FROM jsonb_array_elements($1::jsonb) AS u(r)
), moved AS (
    INSERT INTO job AS j
        (id, company, attempt, status, final, kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr)
    SELECT job_id, company, attempt, status, final, kind, runner, pid, exit_code, reason, begin_at, end_at,
        stdout, stderr
    FROM state WHERE company IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET
        attempt = EXCLUDED.attempt, status = EXCLUDED.status, final = EXCLUDED.final, kind = EXCLUDED.kind,
        runner = EXCLUDED.runner, pid = EXCLUDED.pid, exit_code = EXCLUDED.exit_code, reason = EXCLUDED.reason,
        begin_at = EXCLUDED.begin_at, end_at = EXCLUDED.end_at, stdout = EXCLUDED.stdout,
        stderr = EXCLUDED.stderr, updated_at = now()
    WHERE j.attempt < EXCLUDED.attempt
        OR (j.attempt = EXCLUDED.attempt AND $2::jsonb ? (j.status::text || '>' || EXCLUDED.status::text))
), attempts AS (
    INSERT INTO job_attempt AS a
        (job_id, attempt, status, kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr, results)
    SELECT job_id, attempt, status, kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr, results
    FROM state
    ON CONFLICT (job_id, attempt) DO UPDATE SET
        status = EXCLUDED.status, kind = EXCLUDED.kind, runner = EXCLUDED.runner, pid = EXCLUDED.pid,
        exit_code = EXCLUDED.exit_code, reason = EXCLUDED.reason, begin_at = EXCLUDED.begin_at,
        end_at = EXCLUDED.end_at, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr,
        results = CASE WHEN EXCLUDED.results = '{}' THEN a.results ELSE EXCLUDED.results END, updated_at = now()
    WHERE $2::jsonb ? (a.status::text || '>' || EXCLUDED.status::text)
), retrying AS (
    UPDATE job_dispatch d SET retry_attempt = (r ->> 1)::integer,
        retry_deadline = jetjobs_instant((r ->> 2)::bigint) + make_interval(secs => d.timeout)
    FROM jsonb_array_elements($6::jsonb) AS u(r)
    WHERE d.job_id = r ->> 0 AND d.attempt <= (r ->> 1)::integer AND d.timeout IS NOT NULL
), event AS (
    SELECT u.n, r ->> 0 AS job_id, (r ->> 1)::integer AS attempt, (r ->> 2)::job_status AS status,
        jetjobs_instant((r ->> 3)::bigint) AS at, (r ->> 4)::boolean AS stale, (r ->> 5)::boolean AS outcome,
        u.payload
    FROM ROWS FROM (jsonb_array_elements($3::jsonb), jsonb_array_elements($4::jsonb)) WITH ORDINALITY
        AS u (r, payload, n)
), recorded AS (
    INSERT INTO job_event (job_id, attempt, status, at, stale, payload)
    SELECT job_id, attempt, status, at, stale, payload FROM event
    ON CONFLICT (job_id, attempt, status) DO NOTHING
), kept AS (
    INSERT INTO flow_inbox (job_id, payload)
    SELECT e.job_id, e.payload::text
    FROM event e JOIN flow_node f ON f.job_id = e.job_id AND (f.status = 'dispatched' OR f.outcome_due)
    WHERE e.outcome
    ORDER BY e.n
    RETURNING 1
)
SELECT pg_notify($5, count(*)::text) FROM kept HAVING count(*) > 0;

-- name: record_late_ends --
-- Older attempts' own errors that came after a later attempt began: each attempt's row takes its error in place of the `lost` the store supposed (`superseded by …`, or the reaper's), keeping the runner, pid and start it had; any other outcome stays. A row not there yet is made.
-- $1: rows as record_events' $1 (company null)
WITH late AS (
    SELECT r ->> 0 AS job_id, (r ->> 1)::integer AS attempt, (r ->> 3)::error_kind AS kind, r ->> 4 AS runner,
        (r ->> 5)::bigint AS pid, (r ->> 6)::bigint AS exit_code, r ->> 7 AS reason,
        jetjobs_instant((r ->> 8)::bigint) AS begin_at, jetjobs_instant((r ->> 9)::bigint) AS end_at,
        r ->> 10 AS stdout, r ->> 11 AS stderr, r -> 12 AS results
    FROM jsonb_array_elements($1::jsonb) AS u(r)
)
INSERT INTO job_attempt AS a
    (job_id, attempt, status, kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr, results)
SELECT job_id, attempt, 'error', kind, runner, pid, exit_code, reason, begin_at, end_at, stdout, stderr, results
FROM late
ON CONFLICT (job_id, attempt) DO UPDATE SET
    kind = EXCLUDED.kind, runner = coalesce(EXCLUDED.runner, a.runner), pid = coalesce(EXCLUDED.pid, a.pid),
    exit_code = EXCLUDED.exit_code, reason = EXCLUDED.reason, begin_at = coalesce(EXCLUDED.begin_at, a.begin_at),
    end_at = EXCLUDED.end_at, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr,
    results = CASE WHEN EXCLUDED.results = '{}' THEN a.results ELSE EXCLUDED.results END, updated_at = now()
WHERE a.status = 'error' AND a.kind = 'lost';

-- name: record_dead_letters --
-- Keep dead letters; a redelivered one (same stream sequence and time), or another copy of the letter of the same original message (`dead_letter_original`), is recorded once. Returns how many were new, per company ('unknown' for one the store does not have: a letter's company is its subject's, which anyone who may publish can make up).
WITH kept AS (
    INSERT INTO dead_letter (stream_seq, company, job_id, reason, subject, payload, headers, at)
    SELECT u.seq, u.company, u.job_id, u.reason, u.subject, u.payload, u.headers::jsonb, u.at
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::timestamptz[]) AS u(seq, company, job_id, reason, subject, payload, headers, at)
    ON CONFLICT DO NOTHING
    RETURNING company
)
SELECT coalesce(c.code, 'unknown') AS company, count(*) AS letters
FROM kept LEFT JOIN company c ON c.code = kept.company
GROUP BY 1;

-- name: job_by_id --
-- One job's row.
SELECT id, company, pool, template_id, app_id, status, kind, attempt, final, argv, scheduled_at,
    dispatched_at, begin_at, end_at, exit_code, pid, runner, reason, stdout, stderr, launched_by
FROM job WHERE id = $1;

-- name: job_attempts --
-- Every attempt of one job, first to last, with the results each left.
SELECT attempt, status, kind, runner, pid, exit_code, reason, begin_at, end_at, results::text
FROM job_attempt WHERE job_id = $1
ORDER BY attempt;

-- name: job_events --
-- Every event recorded for one job, in the order it was received.
SELECT attempt, status, at, stale FROM job_event WHERE job_id = $1 ORDER BY id;

-- name: list_jobs --
-- Jobs newest first, optionally of one company, template and status, without those of companies that list actors and give actor $5 none of the roles $6 (computed once, then a filter on the same index scan); those older than created_at $7 and id $8 when given (a cursor: the order key of the last job of the previous page). Without their output: a job keeps up to 256 KiB of each stream by default, and a page of them must fit in one NATS message (job.get gives it).
SELECT id, company, pool, template_id, app_id, status, kind, attempt, final, argv, scheduled_at,
    dispatched_at, begin_at, end_at, exit_code, pid, runner, reason, NULL::text AS stdout,
    NULL::text AS stderr, launched_by, created_at
FROM job
WHERE ($1::text IS NULL OR company = $1)
    AND ($2::bigint IS NULL OR template_id = $2)
    AND ($3::job_status IS NULL OR status = $3)
    AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8::text))
    AND company <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $5 AND ca.role = ANY ($6::text[]))))
ORDER BY created_at DESC, id DESC
LIMIT $4;

-- name: dead_letters --
-- Dead letters newest first, optionally of one company.
SELECT stream_seq, company, job_id, reason, subject, payload, headers, at
FROM dead_letter
WHERE $1::text IS NULL OR company = $1
ORDER BY at DESC, id DESC
LIMIT $2;

-- name: overdue_dispatches --
-- Jobs still waiting for an executor past their deadline, oldest first.
SELECT j.id, j.company, j.pool, j.attempt, d.stream_seq, d.deadline
FROM job j JOIN job_dispatch d ON d.job_id = j.id AND d.attempt = j.attempt
WHERE NOT j.final AND j.status = 'dispatched' AND d.deadline < now()
ORDER BY d.deadline
LIMIT $1;

-- name: overdue_retries --
-- Jobs whose next attempt (a retry, or a redelivery of a job its executor handed back) no executor took by its take-by time, oldest first: the job still shows the error that announced it. `attempt` is that next attempt.
SELECT j.id, j.company, j.pool, j.attempt + 1 AS attempt, d.stream_seq, d.retry_deadline AS deadline, d.timeout
FROM job j JOIN job_dispatch d ON d.job_id = j.id AND d.retry_attempt = j.attempt
WHERE NOT j.final AND j.status = 'error' AND d.retry_deadline < now()
ORDER BY d.retry_deadline
LIMIT $1;

-- name: orphaned_attempts --
-- Jobs taken by a runner that is no longer alive and silent for at least $1 seconds (of a job no job message of is recorded, `unrecorded_jobs`: none redelivers it).
SELECT id, company, attempt, runner, status
FROM job
WHERE NOT final AND status IN ('acknowledged', 'started') AND dispatched_at IS NOT NULL
    AND updated_at < now() - make_interval(secs => $1)
    AND (runner IS NULL OR NOT runner = ANY($2::text[]))
ORDER BY updated_at
LIMIT $3;

-- name: unrecorded_jobs --
-- Jobs known only from their events (no job message of them recorded: few, found through `job_undispatched`), not final, unchanged for at least $1 seconds, and not held by a live runner (one of $2): no message of them is on its way, so nothing can run them (again). Oldest first.
SELECT id, company, attempt, runner, status
FROM job
WHERE dispatched_at IS NULL AND NOT final AND updated_at < now() - make_interval(secs => $1)
    AND (status NOT IN ('acknowledged', 'started') OR runner IS NULL OR NOT runner = ANY($2::text[]))
ORDER BY updated_at
LIMIT $3;

-- name: unrecorded_quiet --
-- Whether job $1 is known only from its events, not final, and unchanged for at least $2 seconds.
SELECT EXISTS (
    SELECT 1 FROM job
    WHERE id = $1 AND dispatched_at IS NULL AND NOT final AND updated_at < now() - make_interval(secs => $2));

-- name: dispatch_of --
-- A job's current message position in the dispatch stream, if known: the message its current attempt started at, or, once that attempt has run, the one its next attempts are redeliveries of (a job a replay queued again waits for its new message to be recorded).
SELECT d.stream_seq FROM job_dispatch d JOIN job j ON j.id = d.job_id
    AND (d.attempt = j.attempt OR (d.attempt < j.attempt AND j.status <> 'dispatched'))
WHERE d.job_id = $1;

-- name: dead_letter_records --
-- Dead letters with their ids, newest first, older than letter $5 when given, optionally of one company, without those of companies that list actors and give actor $3 none of the roles $4. Without their message and headers, only its size: each may be as large as a NATS message (dead_letter gives them).
SELECT id, company, job_id, reason, subject, octet_length(payload) AS size, at, replayed_as
FROM dead_letter
WHERE ($1::text IS NULL OR company = $1)
    AND ($5::bigint IS NULL OR (at, id) < (SELECT d.at, d.id FROM dead_letter d WHERE d.id = $5))
    AND company <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $3 AND ca.role = ANY ($4::text[]))))
ORDER BY at DESC, id DESC
LIMIT $2;

-- name: dead_letter --
-- One dead letter with its message, to show.
SELECT id, company, job_id, reason, subject, payload, octet_length(payload) AS size, headers, at,
    replayed_as
FROM dead_letter WHERE id = $1;

-- name: dead_letter_by_id --
-- One dead letter, locked while it is replayed.
SELECT id, company, job_id, reason, subject, payload, octet_length(payload) AS size, headers, at,
    replayed_as
FROM dead_letter WHERE id = $1
FOR UPDATE;

-- name: mark_replayed --
-- Note which attempt a dead letter's replay started.
UPDATE dead_letter SET replayed_as = $2 WHERE id = $1;

-- name: reopen_job --
-- A replayed job waits for an executor again, as its new attempt; an attempt already past this one wins.
WITH reopened AS (
    UPDATE job SET attempt = $2, status = 'dispatched', final = false, kind = NULL, reason = NULL,
        exit_code = NULL, pid = NULL, runner = NULL, begin_at = NULL, end_at = NULL, stdout = NULL,
        stderr = NULL, dispatched_at = $3, updated_at = now()
    WHERE id = $1 AND attempt < $2
    RETURNING id
)
INSERT INTO job_attempt (job_id, attempt, status)
SELECT id, $2, 'dispatched' FROM reopened
ON CONFLICT (job_id, attempt) DO NOTHING;

-- name: record_slots --
-- Record scheduled slots in one statement: a skipped slot may become fired, a fired one never changes. A record naming another company's template is not recorded (a company's subjects are its own, template ids are global): returns the (template id, company) of those. One whose job is recorded as dispatched for its company and template is that company's all the same: the template moved after the scheduler fired the slot for its old company (a row events alone made names no template). Of the others, the first of each (template, slot) is kept (the caller picked the strongest per company; two companies' records of one slot remain only for a template the store does not have).
WITH record AS (
    SELECT * FROM unnest(
        $1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::timestamptz[], $10::float8[], $11::text[], $12::timestamptz[], $13::text[])
        WITH ORDINALITY
        AS u(template_id, slot, company, outcome, reason, detail, trigger, job_id, scheduled_at, lateness,
            scheduler, recorded_at, flow_run, n)
), foreign_ AS (
    SELECT r.template_id, r.company FROM record r
    JOIN runtemplate t ON t.id = r.template_id JOIN company c ON c.id = t.company_id
    WHERE c.code <> r.company AND NOT EXISTS (
        SELECT 1 FROM job j
        WHERE j.id = r.job_id AND j.company = r.company AND j.template_id = r.template_id
            AND j.dispatched_at IS NOT NULL)
), kept AS (
    INSERT INTO schedule_slot AS s
        (template_id, slot, company, outcome, reason, detail, trigger, job_id, scheduled_at, lateness,
         scheduler, recorded_at, flow_run)
    SELECT DISTINCT ON (template_id, slot) template_id, slot, company, outcome, reason, detail, trigger, job_id,
        scheduled_at, lateness, scheduler, recorded_at, flow_run
    FROM record r
    WHERE NOT EXISTS (SELECT 1 FROM foreign_ f WHERE f.template_id = r.template_id AND f.company = r.company)
    ORDER BY template_id, slot, n
    ON CONFLICT (template_id, slot) DO UPDATE SET
        outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, detail = EXCLUDED.detail,
        trigger = EXCLUDED.trigger, job_id = EXCLUDED.job_id, flow_run = EXCLUDED.flow_run,
        scheduled_at = EXCLUDED.scheduled_at, lateness = EXCLUDED.lateness, scheduler = EXCLUDED.scheduler,
        recorded_at = EXCLUDED.recorded_at
    WHERE s.outcome = 'skipped' AND EXCLUDED.outcome <> 'skipped'
)
SELECT DISTINCT template_id, company FROM foreign_;

-- name: earlier_losses --
-- For each job $1[i] whose attempt $2[i] is being ended `lost`: how many earlier attempts of the same message were lost while an executor held them (reaped, or superseded by a redelivery; not one never taken, nor one its executor handed back itself, which has an end), counted from the attempt the message started at (so a replay starts afresh), and where that message sits in the dispatch stream.
WITH asked AS (
    SELECT u.job_id, u.attempt FROM unnest($1::text[], $2::integer[]) AS u(job_id, attempt)
)
SELECT asked.job_id AS id, d.stream_seq,
    (SELECT count(*) FROM job_attempt a
     WHERE a.job_id = asked.job_id AND a.kind = 'lost' AND a.runner IS NOT NULL AND a.end_at IS NULL
        AND a.attempt >= coalesce(d.attempt, 1) AND a.attempt < asked.attempt) AS lost
FROM asked LEFT JOIN job_dispatch d ON d.job_id = asked.job_id AND d.attempt <= asked.attempt;
