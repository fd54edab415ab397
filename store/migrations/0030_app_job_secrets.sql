-- A flow node that runs an application directly has no template: its job's values
-- of the application's secret fields are sealed for it as a template's run's are,
-- with no template to name (`secrets.fetch` serves them only to a request without one).
ALTER TABLE job_secret ALTER COLUMN template_id DROP NOT NULL;
