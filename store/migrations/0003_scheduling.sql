-- Scheduling policies per template, pausing templates and companies, and the
-- record of every scheduled slot.

ALTER TABLE runtemplate
    ADD COLUMN overlap text NOT NULL DEFAULT 'forbid' CHECK (overlap IN ('forbid', 'allow', 'replace')),
    ADD COLUMN misfire text NOT NULL DEFAULT 'skip' CHECK (misfire IN ('skip', 'fire_once', 'catch_up')),
    ADD COLUMN catch_up_limit integer NOT NULL DEFAULT 10 CHECK (catch_up_limit BETWEEN 1 AND 1000),
    ADD COLUMN jitter double precision NOT NULL DEFAULT 0 CHECK (jitter >= 0),
    ADD COLUMN paused boolean NOT NULL DEFAULT false;

ALTER TABLE company ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- One row per (template, slot). A slot first recorded as skipped (paused, say)
-- and later run by a misfire policy or a backfill becomes fired; a fired slot
-- is never turned back into a skipped one. `job` supplies the outcome.
CREATE TABLE schedule_slot (
    template_id bigint NOT NULL,
    slot timestamptz NOT NULL,
    company text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('fired', 'late', 'skipped')),
    reason text,
    detail text,
    trigger text NOT NULL,
    job_id text,
    scheduled_at timestamptz,
    lateness double precision,
    scheduler text,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (template_id, slot)
);
CREATE INDEX schedule_slot_job ON schedule_slot (job_id) WHERE job_id IS NOT NULL;
