-- Attempts, events and dispatch deadlines no longer reference `job` through
-- foreign keys. Each is written by the same statement that writes its job
-- (`record_dispatches`, `record_events`), and jobs are never deleted, so the
-- keys guarded nothing; their check, a lookup of the job per inserted row, was
-- a fifth of PostgreSQL's CPU per projected message. Artifacts keep theirs:
-- they are uploaded apart from the projection.
ALTER TABLE job_attempt DROP CONSTRAINT job_attempt_job_id_fkey;
ALTER TABLE job_event DROP CONSTRAINT job_event_job_id_fkey;
ALTER TABLE job_dispatch DROP CONSTRAINT job_dispatch_job_id_fkey;
