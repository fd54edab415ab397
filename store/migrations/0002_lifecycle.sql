-- The lifecycle's safety nets: dispatch deadlines for the reaper, replays of dead letters.

-- Where each job's current message sits in the dispatch stream and until when an
-- executor must take it; the reaper records `undelivered` past the deadline and
-- deletes the message so it can never run late.
CREATE TABLE job_dispatch (
    job_id text PRIMARY KEY REFERENCES job (id),
    attempt integer NOT NULL,
    stream_seq bigint,
    deadline timestamptz NOT NULL
);
CREATE INDEX job_dispatch_deadline ON job_dispatch (deadline);

-- Unfinished jobs, which the reaper scans.
CREATE INDEX job_open ON job (status, updated_at) WHERE NOT final;

-- The attempt a replay of a dead letter started.
ALTER TABLE dead_letter ADD COLUMN replayed_as integer;
