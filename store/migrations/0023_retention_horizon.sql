-- Retention remembers the newest horizon it pruned history to, written before
-- it removes anything. The events and dispatch projections read it only for a
-- message older than an hour of a job they have no row of: older than this
-- horizon too, it is a late copy of a job already pruned, and recording it
-- would bring back a bare row of that job. One row, so it never grows.
CREATE TABLE retention_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    pruned_before timestamptz NOT NULL
);

-- Templates deleted before the horizon go once nothing names them any more;
-- this index reads the deleted ones, oldest first, without scanning the others.
CREATE INDEX runtemplate_deleted ON runtemplate (deleted_at) WHERE deleted_at IS NOT NULL;

-- A flow run still kept keeps every job its flow made since it began, those of
-- its nodes' earlier rounds included, which no node names any more. A prune
-- finds the kept runs that began before its horizon (the only ones that can
-- have made a job older than it) through this index, and the runs that may
-- name a deleted template (all begun before it was deleted) too. Flow runs are
-- not on the path of job events.
CREATE INDEX flow_run_created ON flow_run (created_at);
