-- Flows: saved definitions, runs and their nodes. A node's job id is derived
-- from (run, node, round), so it is unique and found from any job event.

CREATE TABLE flow_definition (
    company text NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company, name)
);

CREATE TABLE flow_run (
    id text PRIMARY KEY,
    company text NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('started', 'finished', 'error', 'cancelled')),
    reason text,
    launched_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz
);
CREATE INDEX flow_run_company ON flow_run (company, created_at DESC);

CREATE TABLE flow_node (
    run_id text NOT NULL REFERENCES flow_run (id) ON DELETE CASCADE,
    node text NOT NULL,
    status text NOT NULL
        CHECK (status IN ('waiting_for_prerequisites', 'dispatched', 'succeeded', 'failed', 'skipped')),
    round integer NOT NULL DEFAULT 1,
    job_id text UNIQUE,
    results jsonb NOT NULL DEFAULT '{}',
    reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, node)
);
