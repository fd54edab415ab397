-- The values a run gives its template's secret fields (a run-now's `--env`, a flow's
-- env for a template node), kept out of the job message: one AEAD ciphertext per
-- field, bound to the job and the field name, under the key `key_id` names. Jobs
-- carry the field's name only; `secrets.fetch` serves the value to that job alone,
-- over the template's and its credentials'. A row is written before its job is
-- recorded (the message is published after it is committed), so it names no job row;
-- retention removes it with its job, or on its own when no job was recorded. Its job id
-- compares byte by byte, as the job's does (0015).
CREATE TABLE job_secret (
    job_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    company text NOT NULL,
    template_id bigint NOT NULL,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);

CREATE INDEX job_secret_created_at ON job_secret (created_at);
