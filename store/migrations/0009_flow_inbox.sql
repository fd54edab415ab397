-- The flow inbox: outcomes of flow nodes' jobs, written by the events projection
-- in the transaction that records them, taken by the orchestrator in the
-- transaction of the step they cause, so each outcome advances its run once and
-- no job event has to be read from JetStream a second time. `not_before` pushes
-- back an outcome whose step failed, so it cannot hold up the others.
CREATE TABLE flow_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    payload text NOT NULL,
    tries integer NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
