-- A retry, or a job its executor handed back, waits for an executor again: like a
-- first delivery, it must be taken within its message's `timeout`, counted from
-- when it is due. The message's `timeout` (seconds) is kept with its position, and
-- an error event that announces a next attempt sets which attempt it follows and
-- when that one must be taken by; the reaper ends a job whose next attempt is
-- past it `undelivered`. Rows of messages projected before this stay without a
-- timeout, and their retries without a deadline.
ALTER TABLE job_dispatch
    ADD COLUMN timeout double precision,
    ADD COLUMN retry_attempt integer,
    ADD COLUMN retry_deadline timestamptz;
