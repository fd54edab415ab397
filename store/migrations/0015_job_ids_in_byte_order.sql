-- Job ids (and a job's company) compare byte by byte, collation "C", in the
-- tables every job event writes, whatever the database's default collation.
-- Under a linguistic one (en_US.UTF-8, the default of many clusters) each
-- comparison in their indexes went through strcoll: in such a database,
-- PostgreSQL spent a sixth more CPU per projected message without this change
-- (21.7 against 18.7 µs in the store benchmark). Ids are listed and
-- locked in byte order everywhere now. Changing a column's collation rebuilds
-- the indexes on it, not the table, while the table is locked: about 6 s for a
-- million jobs (with their attempts, events and deadlines) on a small machine.
ALTER TABLE job ALTER COLUMN id TYPE text COLLATE "C", ALTER COLUMN company TYPE text COLLATE "C";
ALTER TABLE job_attempt ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE job_event ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE job_dispatch ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE artifact ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE schedule_slot ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE flow_node ALTER COLUMN job_id TYPE text COLLATE "C";
ALTER TABLE flow_inbox ALTER COLUMN job_id TYPE text COLLATE "C";

CREATE OR REPLACE FUNCTION jetjobs_lock_job_ids(ids jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM count(pg_advisory_xact_lock(74, hashtext(u.id)))
    FROM (
        SELECT DISTINCT t.id COLLATE "C" AS id FROM jsonb_array_elements_text(ids) AS t(id) ORDER BY 1
    ) AS u;
END
$$;
