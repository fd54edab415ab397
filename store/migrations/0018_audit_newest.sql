-- `audit list` without --company reads the newest entries of every company: without
-- this index it sorted the whole log, which only grows; with it, the newest page
-- (and each older page after a `before` entry) is read in index order.
CREATE INDEX audit_log_newest ON audit_log (at DESC, id DESC);
