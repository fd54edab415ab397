-- Queries of a prune's audit entry (an on-demand prune's, `history.prune`, or a
-- background round's, `history.retention`): written with the prune's first batch
-- and brought up to date with each later one, each in that batch's transaction, so
-- no row goes without the entry saying so. Each block starts with
-- `-- name: <name> --` and a one-line comment saying what it does.

-- name: open_prune_entry --
-- Record who prunes, as action $2, with what horizon and what the first batch removed; returns the entry's id.
INSERT INTO audit_log (actor, action, company, detail) VALUES ($1, $2, NULL, $3::jsonb)
RETURNING id;

-- name: update_prune_entry --
-- Bring a prune's entry up to what its batches have removed so far.
UPDATE audit_log SET detail = $2::jsonb WHERE id = $1;
