-- One dead letter per original message: the executor that ran it and the reaper that
-- presumed it lost, two stores reaping it, or an executor burying a bad message again
-- on its redelivery each publish a copy (a letter's msg id ends with a nonce, so
-- JetStream keeps both). The company comes first: a company may publish only its own
-- letters, so none can keep another's out. Letters recorded before keep their copies.
DO $$
BEGIN
    EXECUTE format(
        'CREATE UNIQUE INDEX dead_letter_original ON dead_letter '
        '(company, subject, md5(payload), md5(headers::text)) WHERE id > %s',
        (SELECT coalesce(max(id), 0) FROM dead_letter)
    );
END
$$;
