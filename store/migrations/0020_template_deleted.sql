-- Deleting a run template keeps its row: its jobs, slots, credentials assignments
-- and audit entries name it by id, and its history stays readable. A deleted
-- template is off the board and refuses every change and run; its id is never
-- reused, and its name is free again for a new template of its company.
ALTER TABLE runtemplate ADD COLUMN deleted_at timestamptz;
ALTER TABLE runtemplate DROP CONSTRAINT runtemplate_company_id_name_key;
CREATE UNIQUE INDEX runtemplate_live_name ON runtemplate (company_id, name) WHERE deleted_at IS NULL;
