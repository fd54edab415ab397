-- The first schema: tenants, applications, templates, and the job record.

-- Labels equal contracts.enums.Status / ErrorKind (a test keeps them in step).
CREATE TYPE job_status AS ENUM (
    'waiting_for_prerequisites', 'dispatched', 'acknowledged', 'started', 'processed', 'error'
);
CREATE TYPE error_kind AS ENUM ('undelivered', 'lost', 'timeout', 'exit', 'cancelled', 'invalid');

CREATE TABLE company (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE,
    name text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE application (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid uuid NOT NULL UNIQUE,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    executable text NOT NULL,
    cmdparams text NOT NULL DEFAULT '',
    environment jsonb NOT NULL DEFAULT '{}',
    ociimage text NOT NULL DEFAULT '',
    homepage text NOT NULL DEFAULT '',
    tags text[] NOT NULL DEFAULT '{}',
    document jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runtemplate (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    app_id bigint NOT NULL REFERENCES application (id),
    company_id bigint NOT NULL REFERENCES company (id),
    interv text NOT NULL DEFAULT 'n' CHECK (interv IN ('n', 'i', 'h', 'd', 'w', 'm', 'y', 'c')),
    cron text,
    timezone text NOT NULL DEFAULT 'UTC',
    env jsonb NOT NULL DEFAULT '{}',
    pool text NOT NULL DEFAULT 'default',
    timeout double precision NOT NULL,
    timeout_ack double precision NOT NULL,
    timeout_result double precision NOT NULL,
    retries integer NOT NULL DEFAULT 0,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, name)
);
CREATE INDEX runtemplate_app ON runtemplate (app_id);

-- The job id is the deterministic id of a slot: the primary key is what drops
-- a double-fired slot for good. Template and app ids are not foreign keys: the
-- job table records what happened on the bus, whoever published it.
CREATE TABLE job (
    id text PRIMARY KEY,
    company text NOT NULL,
    pool text,
    template_id bigint,
    app_id bigint,
    status job_status NOT NULL,
    kind error_kind,
    attempt integer NOT NULL DEFAULT 1,
    final boolean NOT NULL DEFAULT false,
    argv jsonb,
    scheduled_at timestamptz,
    dispatched_at timestamptz,
    begin_at timestamptz,
    end_at timestamptz,
    exit_code bigint,
    pid bigint,
    runner text,
    reason text,
    stdout text,
    stderr text,
    launched_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_newest ON job (created_at DESC, id DESC);
CREATE INDEX job_company_newest ON job (company, created_at DESC, id DESC);
CREATE INDEX job_template_newest ON job (template_id, created_at DESC, id DESC);
CREATE INDEX job_status_newest ON job (status, created_at DESC, id DESC);

CREATE TABLE job_attempt (
    job_id text NOT NULL REFERENCES job (id),
    attempt integer NOT NULL,
    status job_status NOT NULL,
    kind error_kind,
    runner text,
    pid bigint,
    exit_code bigint,
    reason text,
    begin_at timestamptz,
    end_at timestamptz,
    stdout text,
    stderr text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);

-- Every lifecycle event as received; a redelivered event is recorded once.
CREATE TABLE job_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL REFERENCES job (id),
    attempt integer NOT NULL,
    status job_status NOT NULL,
    at timestamptz NOT NULL,
    stale boolean NOT NULL DEFAULT false,
    payload jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, attempt, status)
);

CREATE TABLE artifact (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL REFERENCES job (id),
    attempt integer NOT NULL,
    name text NOT NULL,
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size bigint NOT NULL,
    sha256 text NOT NULL,
    content bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, attempt, name)
);

-- A redelivered dead letter has the same stream sequence and time; a stream
-- recreated from scratch restarts its sequences but not the clock.
CREATE TABLE dead_letter (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_seq bigint NOT NULL,
    company text NOT NULL,
    job_id text,
    reason text NOT NULL,
    subject text NOT NULL,
    payload text NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_seq, at)
);
CREATE INDEX dead_letter_company_newest ON dead_letter (company, at DESC);
