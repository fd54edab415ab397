-- The tenant queries: credentials, actors, audit, artifacts, application extras.
-- Same format as queries.sql; store/tenant_queries.py has one method per block.

-- name: set_app_extras --
-- Record what an application declares beyond the basics (artifacts, exit codes).
UPDATE application SET artifacts = $2::jsonb, exit_codes = $3::jsonb WHERE id = $1;

-- name: app_document --
-- The app file an application was last imported from, as it was.
SELECT document FROM application WHERE id = $1;

-- name: template_extras --
-- Per template: its application's artifacts and exit codes, and the fields its credentials provide.
SELECT t.id AS template_id, a.artifacts, a.exit_codes,
    coalesce((SELECT array_agg(DISTINCT f ORDER BY f)
        FROM template_credential tc
        JOIN credential c ON c.id = tc.credential_id, unnest(c.fields) AS f
        WHERE tc.template_id = t.id), '{}') AS credential_fields
FROM runtemplate t JOIN application a ON a.id = t.app_id
WHERE t.id = ANY($1::bigint[]);

-- name: template_to_run --
-- Everything run-now needs, in one statement: the template with its company and application (as `templates` gives it, with the names of its sealed secret fields), what its application and credentials add (as `template_extras`; null artifacts when it runs no application), and the roles actor $2 holds in its company with whether that company lists any actor; no row when there is no such template.
SELECT t.id, t.name, t.app_id, t.interv, t.cron, t.timezone, t.env, t.pool,
    t.timeout, t.timeout_ack, t.timeout_result, t.retries, t.active, t.updated_at,
    t.overlap, t.misfire, t.catch_up_limit, t.jitter, t.paused, t.flow,
    c.code AS company, c.enabled AS company_enabled, c.paused AS company_paused,
    a.uuid, a.name AS app_name, a.description, a.executable, a.cmdparams, a.environment,
    a.ociimage, a.homepage, a.tags, a.updated_at AS app_updated_at, t.deleted_at,
    t.id AS template_id, a.artifacts, a.exit_codes,
    coalesce((SELECT array_agg(DISTINCT f ORDER BY f)
        FROM template_credential tc
        JOIN credential cr ON cr.id = tc.credential_id, unnest(cr.fields) AS f
        WHERE tc.template_id = t.id), '{}') AS credential_fields,
    coalesce((SELECT array_agg(ca.role) FROM company_actor ca
        WHERE ca.company_id = t.company_id AND ca.actor = $2), '{}') AS roles,
    EXISTS (SELECT 1 FROM company_actor ca WHERE ca.company_id = t.company_id) AS closed,
    ARRAY(SELECT s.name FROM template_secret s WHERE s.template_id = t.id ORDER BY s.name) AS sealed_names
FROM runtemplate t
JOIN company c ON c.id = t.company_id
LEFT JOIN application a ON a.id = t.app_id
WHERE t.id = $1;

-- name: upsert_credential --
-- Create or replace a company's credential set (values arrive already encrypted).
INSERT INTO credential AS c (company_id, name, kind, fields, key_id, nonce, ciphertext)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (company_id, name) DO UPDATE SET
    kind = EXCLUDED.kind, fields = EXCLUDED.fields, key_id = EXCLUDED.key_id,
    nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now()
RETURNING id, updated_at;

-- name: company_credentials --
-- A company's credential sets by name, without their values.
SELECT c.id, c.name, c.kind, c.fields, c.updated_at
FROM credential c WHERE c.company_id = $1 ORDER BY c.name;

-- name: credential_id --
-- The id of one of a company's credential sets, kept from being deleted until the transaction ends (a delete under way is waited for, and then no row is found).
SELECT id FROM credential WHERE company_id = $1 AND name = $2 FOR KEY SHARE;

-- name: lock_credential --
-- One of a company's credential sets, without its values, locked for deletion: an assignment under way is waited for.
SELECT id, name, kind, fields, updated_at FROM credential WHERE company_id = $1 AND name = $2 FOR UPDATE;

-- name: credential_users --
-- The live (not deleted) templates that use a credential set, by id.
SELECT t.id, t.name FROM template_credential tc JOIN runtemplate t ON t.id = tc.template_id
WHERE tc.credential_id = $1 AND t.deleted_at IS NULL
ORDER BY t.id;

-- name: credential_jobs --
-- The unfinished jobs (queued, running, or waiting to retry) of the templates, deleted or not, that use credential set $1, at most $2 of them: each attempt still fetches the set's values. Per template, only its rows not final (the `job_open` partial index, or `job_template_newest`).
SELECT j.id, j.template_id FROM template_credential tc
JOIN job j ON j.template_id = tc.template_id
WHERE tc.credential_id = $1 AND NOT j.final
ORDER BY j.id
LIMIT $2;

-- name: delete_credential --
-- Remove a credential set; the assignments of deleted templates go with it.
DELETE FROM credential WHERE id = $1;

-- name: sealed_credentials --
-- Every credential, locked, for re-encryption under a new key.
SELECT c.id, co.code AS company, c.name, c.key_id, c.nonce, c.ciphertext
FROM credential c JOIN company co ON co.id = c.company_id
ORDER BY c.id
FOR UPDATE OF c;

-- name: reseal_credential --
-- Store a credential re-encrypted under another key.
UPDATE credential SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = now() WHERE id = $1;

-- name: assign_credential --
-- Let a template use a credential set (assigning twice changes nothing).
INSERT INTO template_credential (template_id, credential_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING;

-- name: unassign_credential --
-- Stop template $1 using its company's ($2) credential set $3; no row when it did not use it.
DELETE FROM template_credential tc USING credential c
WHERE tc.template_id = $1 AND tc.credential_id = c.id AND c.company_id = $2 AND c.name = $3
RETURNING c.id;

-- name: template_credentials --
-- The credential sets a template uses, sealed, by name: only its own company's (one of another company is never served, even if an assignment outlived a move).
SELECT c.id, c.name, c.fields, c.key_id, c.nonce, c.ciphertext, co.code AS company
FROM template_credential tc
JOIN runtemplate t ON t.id = tc.template_id
JOIN credential c ON c.id = tc.credential_id AND c.company_id = t.company_id
JOIN company co ON co.id = c.company_id
WHERE tc.template_id = $1
ORDER BY c.name;

-- name: template_company --
-- The company code of a template.
SELECT co.code FROM runtemplate t JOIN company co ON co.id = t.company_id WHERE t.id = $1;

-- name: dead_letter_company --
-- The company of a dead letter.
SELECT company FROM dead_letter WHERE id = $1;

-- name: flow_run_company --
-- The company of a flow run.
SELECT company FROM flow_run WHERE id = $1;

-- name: job_brief --
-- A job's company, template and whether it has ended for good.
SELECT company, template_id, final FROM job WHERE id = $1;

-- name: hold_job --
-- The company of job $1 and whether its dispatch is recorded, its row held until commit so that an artifact refers to the job as checked (a row only events made may still be taken back by the dispatch of another company).
SELECT company, dispatched_at IS NOT NULL AS dispatched FROM job WHERE id = $1 FOR KEY SHARE;

-- name: insert_artifact --
-- Keep one artifact of an attempt; uploading it again replaces it.
INSERT INTO artifact (job_id, attempt, name, path, content_type, size, sha256, content, over_limit, missing, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (job_id, attempt, name) DO UPDATE SET
    path = EXCLUDED.path, content_type = EXCLUDED.content_type, size = EXCLUDED.size,
    sha256 = EXCLUDED.sha256, content = EXCLUDED.content, over_limit = EXCLUDED.over_limit,
    missing = EXCLUDED.missing, note = EXCLUDED.note
RETURNING job_id, attempt, name, path, content_type, size, sha256, over_limit, missing, note;

-- name: job_artifacts --
-- A job's artifacts, attempt by attempt, by name; those after attempt $4 and name $5 when given (a cursor), rows $2 on, at most $3 of them.
SELECT job_id, attempt, name, path, content_type, size, sha256, over_limit, missing, note
FROM artifact
WHERE job_id = $1 AND ($4::integer IS NULL OR (attempt, name) > ($4, $5::text))
ORDER BY attempt, name
OFFSET $2 LIMIT $3;

-- name: artifact_content --
-- One artifact with its bytes: from attempt $3, or when $3 is null from the
-- latest attempt that left it (the record that it is missing only when no
-- attempt left it).
SELECT job_id, attempt, name, path, content_type, size, sha256, over_limit, missing, note, content
FROM artifact WHERE job_id = $1 AND name = $2 AND ($3::integer IS NULL OR attempt = $3)
ORDER BY missing, attempt DESC LIMIT 1;

-- name: actor_roles --
-- The roles an actor holds in a company, whether the company lists any actor at all, and whether it is known: it exists, or jobs were published for it (a job message may name a company the store does not have, and its jobs run and are recorded).
SELECT coalesce(array_agg(ca.role) FILTER (WHERE ca.actor = $2), '{}') AS roles,
    count(ca.role) > 0 AS closed,
    count(co.id) > 0 OR EXISTS (SELECT 1 FROM job WHERE company = $1) AS known
FROM company co LEFT JOIN company_actor ca ON ca.company_id = co.id
WHERE co.code = $1;

-- name: lock_actors --
-- Hold a company's list of actors until the transaction ends, so that concurrent grants and revokes see each other (the one that closes a company, the one that would leave it without an admin).
SELECT id FROM company WHERE id = $1 FOR NO KEY UPDATE;

-- name: grant_actor --
-- Give an actor a role in a company (granting twice changes nothing).
INSERT INTO company_actor (company_id, actor, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING;

-- name: revoke_actor --
-- Take a role away from an actor in a company; no row when it did not hold it.
DELETE FROM company_actor WHERE company_id = $1 AND actor = $2 AND role = $3 RETURNING actor;

-- name: recent_actors_without_role --
-- The actors of company $1's newest $3 audit entries since $2 ago (the log is indexed by company and time) who hold no role in it now: those a closed company refuses.
SELECT DISTINCT recent.actor FROM (
    SELECT actor FROM audit_log WHERE company = $1 AND at > now() - $2::interval
    ORDER BY at DESC LIMIT $3) recent
WHERE NOT EXISTS (
    SELECT 1 FROM company_actor ca JOIN company co ON co.id = ca.company_id
    WHERE co.code = $1 AND ca.actor = recent.actor)
ORDER BY recent.actor;

-- name: company_actors --
-- A company's actors and their roles.
SELECT actor, role FROM company_actor WHERE company_id = $1 ORDER BY actor, role;

-- name: write_audit --
-- Record who changed what.
INSERT INTO audit_log (actor, action, company, detail) VALUES ($1, $2, $3, $4::jsonb);

-- name: audit_entries --
-- The audit log newest first, older than entry $5 when given, optionally of one company; with an actor $3, without the entries of companies that list actors and give it none of the roles $4 (entries of no company stay).
SELECT id, at, actor, action, company, detail FROM audit_log
WHERE ($1::text IS NULL OR company = $1)
    AND ($5::bigint IS NULL OR (at, id) < (SELECT e.at, e.id FROM audit_log e WHERE e.id = $5))
    AND ($3::text IS NULL OR company IS NULL OR company <> ALL (ARRAY(
        SELECT co.code FROM company co JOIN company_actor ca ON ca.company_id = co.id
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $3 AND ca.role = ANY ($4::text[])))))
ORDER BY at DESC, id DESC
LIMIT $2;

-- name: insert_token --
-- Issue a token: only its hash is stored.
INSERT INTO actor_token (actor, token_hash, admin, note, created_by) VALUES ($1, $2, $3, $4, $5)
RETURNING id, actor, admin, note, created_by, created_at, revoked_at;

-- name: token_by_hash --
-- The token a request presents, revoked or not.
SELECT id, actor, admin, note, created_by, created_at, revoked_at FROM actor_token WHERE token_hash = $1;

-- name: revoke_token --
-- Revoke a token for good (revoking twice keeps the first time).
UPDATE actor_token SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
RETURNING id, actor, admin, note, created_by, created_at, revoked_at;

-- name: list_tokens --
-- Tokens, of one actor or all, newest first; never their values; those older than token $4 when given (a cursor), rows $2 on, at most $3 of them.
SELECT id, actor, admin, note, created_by, created_at, revoked_at FROM actor_token
WHERE ($1::text IS NULL OR actor = $1) AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
OFFSET $2 LIMIT $3;

-- name: own_secret_values --
-- The sealed values template $1 sets for the secret fields named in $2 (a null job_id), and those job $3 of company $4, a run of that template, was given for them.
SELECT NULL::text AS job_id, name, key_id, nonce, ciphertext FROM template_secret
WHERE template_id = $1 AND name = ANY($2::text[])
UNION ALL
SELECT job_id, name, key_id, nonce, ciphertext FROM job_secret
WHERE job_id = $3 AND company = $4 AND template_id = $1 AND name = ANY($2::text[]);

-- name: app_job_secret_values --
-- The sealed values job $1 of company $2, which runs an application directly (no template), was given for the secret fields named in $3.
SELECT name, key_id, nonce, ciphertext FROM job_secret
WHERE job_id = $1 AND company = $2 AND template_id IS NULL AND name = ANY($3::text[]);

-- name: put_job_secrets --
-- Store the sealed values job $1 (of company $2, a run of template $3, or none for a job that runs an application directly) is given for the secret fields named in $4 (key ids $5, nonces $6, ciphertexts $7), but none it holds already: a request repeated with the same run key runs with the values the first one gave.
INSERT INTO job_secret (job_id, company, template_id, name, key_id, nonce, ciphertext)
SELECT $1, $2, $3, f.name, f.key_id, f.nonce, f.ciphertext
FROM unnest($4::text[], $5::text[], $6::bytea[], $7::bytea[]) AS f (name, key_id, nonce, ciphertext)
ON CONFLICT (job_id, name) DO NOTHING;

-- name: sealed_job_secrets --
-- Every job secret, locked, for re-encryption under a new key.
SELECT job_id, name, key_id, nonce, ciphertext FROM job_secret
ORDER BY job_id, name
FOR UPDATE;

-- name: reseal_job_secret --
-- Store a job secret re-encrypted under another key.
UPDATE job_secret SET key_id = $3, nonce = $4, ciphertext = $5
WHERE job_id = $1 AND name = $2;

-- name: keep_template_secrets --
-- Forget the sealed values of template $1 but those of the fields named in $2.
DELETE FROM template_secret WHERE template_id = $1 AND name <> ALL($2::text[]);

-- name: put_template_secret --
-- Store (or replace) the sealed value template $1 sets for secret field $2.
INSERT INTO template_secret (template_id, name, key_id, nonce, ciphertext)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (template_id, name) DO UPDATE SET
    key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now();

-- name: sealed_template_secrets --
-- Every template secret, locked, for re-encryption under a new key.
SELECT template_id, name, key_id, nonce, ciphertext FROM template_secret
ORDER BY template_id, name
FOR UPDATE;

-- name: reseal_template_secret --
-- Store a template secret re-encrypted under another key.
UPDATE template_secret SET key_id = $3, nonce = $4, ciphertext = $5, updated_at = now()
WHERE template_id = $1 AND name = $2;

-- name: lock_secret_sealing --
-- Let one store at a time move the secret values templates hold in clear, until its transaction ends.
SELECT pg_advisory_xact_lock($1);

-- name: set_template_env --
-- Replace a template's clear env (its secret values moved to `template_secret`).
UPDATE runtemplate SET env = $2::jsonb, updated_at = now() WHERE id = $1;

-- name: await_replay --
-- Wait for a replay of job $1 (of company $2) under way: it holds the job's dead letter locked until it has reopened the job.
SELECT 1 FROM dead_letter WHERE company = $2 AND job_id = $1 FOR SHARE;

-- name: sealed_by_key --
-- How many sealed values of each kind (credential sets, template secrets, job secrets) each key encrypts.
SELECT key_id, kind, count(*) AS count FROM (
    SELECT key_id, 'credential sets' AS kind FROM credential
    UNION ALL SELECT key_id, 'template secrets' FROM template_secret
    UNION ALL SELECT key_id, 'job secrets' FROM job_secret
) AS sealed
GROUP BY key_id, kind
ORDER BY key_id, kind;
