-- A file an application declares but a job did not leave is recorded too, with
-- no content, so that `jetjobs job artifacts` says so instead of leaving it out.
ALTER TABLE artifact ADD COLUMN missing boolean NOT NULL DEFAULT false;
