-- Cancelling a flow run, safely across a crash and truthfully.
--
-- The kills of a cancelled run's running jobs go into the flow outbox, in the
-- cancel's transaction: a store that stops between the commit and the kills
-- leaves them there, and the next store to drain the outbox stops the jobs.
-- A `kill` row names the job in `msg_id` and `payload`, and in `subject` the
-- API operation that stops it.
ALTER TABLE flow_outbox DROP CONSTRAINT flow_outbox_kind_check;
ALTER TABLE flow_outbox ADD CONSTRAINT flow_outbox_kind_check CHECK (kind IN ('job', 'event', 'kill'));

-- A node a cancel failed while its job ran still waits for that job's outcome:
-- a job that ended before its kill reached it and succeeded turns the node
-- `succeeded`, so the node says what happened and `flow retry` does not run
-- the job again. The outcome, once recorded, clears the flag.
ALTER TABLE flow_node ADD COLUMN outcome_due boolean NOT NULL DEFAULT false;
