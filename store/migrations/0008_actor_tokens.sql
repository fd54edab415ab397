-- API tokens: an actor proves who it is with a token an admin issued. Only the
-- SHA-256 of a token is kept (tokens are 256 random bits, so a fast hash is
-- enough); a revoked token stays listed and is refused.
CREATE TABLE actor_token (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor text NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    admin boolean NOT NULL DEFAULT false,
    note text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX actor_token_actor ON actor_token (actor);
