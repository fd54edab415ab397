-- The values a template sets for its application's secret fields, kept out of its
-- env: one AEAD ciphertext per field, bound to the template and the field name,
-- under the key `key_id` names (as a credential's). Jobs carry the field's name
-- only; the executor fetches the value with `secrets.fetch`.
CREATE TABLE template_secret (
    template_id bigint NOT NULL REFERENCES runtemplate (id) ON DELETE CASCADE,
    name text NOT NULL,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, name)
);
