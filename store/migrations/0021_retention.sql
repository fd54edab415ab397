-- Retention: the store removes final history older than a horizon in small
-- batches, oldest first. Jobs are read in the order of `job_newest`, dead letters
-- of `dead_letter_newest` and audit entries of `audit_log_newest`; these indexes
-- give finished flow runs and slot records the same, so each batch reads its
-- oldest candidates in index order instead of scanning a table that only grows.
-- Neither table is on the path of job events.
CREATE INDEX flow_run_ended ON flow_run (ended_at) WHERE status <> 'started';
CREATE INDEX schedule_slot_recorded ON schedule_slot (recorded_at);
