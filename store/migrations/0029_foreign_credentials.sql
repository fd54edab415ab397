-- A template moved to another company used to keep its old company's credential
-- sets, which that company could then neither unassign nor delete. A move now drops
-- them; this drops those left by moves made before.
DELETE FROM template_credential tc
USING credential c, runtemplate t
WHERE tc.credential_id = c.id AND tc.template_id = t.id AND c.company_id <> t.company_id;
