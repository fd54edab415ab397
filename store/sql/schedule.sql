-- Queries of pausing, backfilling and explaining schedules. Each block starts
-- with `-- name: <name> --` and a one-line comment saying what it does.

-- name: set_template_paused --
-- Pause or resume one template; returns nothing when the id is unknown or the template deleted.
UPDATE runtemplate SET paused = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id;

-- name: delete_template --
-- Delete a template, keeping its row for its history; returns when, nothing when the id is unknown or it was deleted before.
UPDATE runtemplate SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL
RETURNING deleted_at;

-- name: set_company_paused --
-- Pause or resume a company; returns its id, nothing when the code is unknown.
UPDATE company SET paused = $2 WHERE code = $1 RETURNING id;

-- name: company_template_ids --
-- Ids of every live (not deleted) template of a company.
SELECT id FROM runtemplate WHERE company_id = $1 AND deleted_at IS NULL ORDER BY id;

-- name: company_paused --
-- Whether a company (by code) is paused; nothing when the code is unknown.
SELECT paused FROM company WHERE code = $1;

-- name: ran_jobs --
-- Which of these job ids the record already knows (as a job or as a fired slot).
SELECT id FROM job WHERE id = ANY($1::text[])
UNION
SELECT job_id FROM schedule_slot WHERE job_id = ANY($1::text[]) AND outcome <> 'skipped';

-- name: recent_slots --
-- A template's latest recorded slots under company $3 (its company now: those of a company it moved from are that company's history, not its new company's), newest first, with their job's (or flow run's) outcome.
SELECT s.template_id, s.slot, s.company, s.outcome, s.reason, s.detail, s.trigger, s.job_id,
    s.scheduled_at, s.lateness, s.scheduler, s.recorded_at, s.flow_run,
    j.status::text AS job_status, j.kind::text AS job_kind, j.final AS job_final, f.status AS flow_status
FROM schedule_slot s
LEFT JOIN job j ON j.id = s.job_id
LEFT JOIN flow_run f ON f.id = s.flow_run
WHERE s.template_id = $1 AND s.company = $3
ORDER BY s.slot DESC
LIMIT $2;
