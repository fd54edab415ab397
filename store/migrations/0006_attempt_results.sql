-- The key-value results a job wrote to JETJOBS_RESULT_FILE, kept with the attempt
-- that produced them (its outcome event carries them).
ALTER TABLE job_attempt ADD COLUMN results jsonb NOT NULL DEFAULT '{}';

-- Attempts recorded before this column existed: their outcome events kept the results.
UPDATE job_attempt a SET results = e.payload -> 'results'
FROM (
    SELECT DISTINCT ON (job_id, attempt) job_id, attempt, payload
    FROM job_event
    WHERE status IN ('processed', 'error') AND NOT stale AND payload -> 'results' <> '{}'
    ORDER BY job_id, attempt, id
) AS e
WHERE e.job_id = a.job_id AND e.attempt = a.attempt AND jsonb_typeof(e.payload -> 'results') = 'object';
