-- When a template was last put on the schedule: created active, made active
-- again, or given a new schedule. A scheduler owes a misfire policy no slot from
-- before it (the template was not scheduled then). Unknown (null) for templates
-- saved before this column: their slots are owed as before.
ALTER TABLE runtemplate ADD COLUMN scheduled_since timestamptz;
