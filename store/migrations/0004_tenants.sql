-- Tenants: encrypted credentials, actors and their roles, the audit log,
-- and what applications declare beyond the basics (artifacts, exit codes).

ALTER TABLE application
    ADD COLUMN artifacts jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN exit_codes jsonb;

-- A company's credential set: the field names are not secret and stay readable
-- (templates and `template env` list them); the values are one AEAD ciphertext
-- bound to the company and name, under the key `key_id` names.
CREATE TABLE credential (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id bigint NOT NULL REFERENCES company (id),
    name text NOT NULL,
    kind text NOT NULL DEFAULT '',
    fields text[] NOT NULL,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, name)
);

CREATE TABLE template_credential (
    template_id bigint NOT NULL REFERENCES runtemplate (id) ON DELETE CASCADE,
    credential_id bigint NOT NULL REFERENCES credential (id) ON DELETE CASCADE,
    PRIMARY KEY (template_id, credential_id)
);
CREATE INDEX template_credential_credential ON template_credential (credential_id);

-- Who may do what in a company. A company with no actors listed is open to
-- every caller (the single-operator default); listing one closes it.
CREATE TABLE company_actor (
    company_id bigint NOT NULL REFERENCES company (id),
    actor text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'reader', 'executor')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, actor, role)
);

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    company text,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_company ON audit_log (company, at DESC);

-- An artifact over its size limit is recorded with its size and no content.
ALTER TABLE artifact
    ADD COLUMN path text NOT NULL DEFAULT '',
    ADD COLUMN over_limit boolean NOT NULL DEFAULT false,
    ADD COLUMN note text;
