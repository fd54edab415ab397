-- Catalogs are read a page at a time after a key cursor (the key of the last item
-- read), so each page is a range of the list's order. These give `app.list` its
-- order (name, id), and `template.list` a company's templates in its order (name,
-- id), deleted ones included: the unique index of live names leaves them out, and
-- `app.list --company` finds a company's templates through it too.
CREATE INDEX application_listed ON application (name, id);
CREATE INDEX runtemplate_listed ON runtemplate (company_id, name, id);
