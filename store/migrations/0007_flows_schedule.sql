-- Flows on a schedule, and the flow outbox.
--
-- A run template runs either an application or a saved flow (by name); every
-- fire of a flow template starts a flow run whose id is the slot's id, kept in
-- the slot's record.
ALTER TABLE runtemplate ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE runtemplate ADD COLUMN flow text;
ALTER TABLE runtemplate ADD CONSTRAINT runtemplate_runs_one CHECK ((app_id IS NULL) <> (flow IS NULL));

ALTER TABLE schedule_slot ADD COLUMN flow_run text;

-- What a flow step must publish (job messages and flow events), written in the
-- step's transaction and deleted once JetStream has it: a store that stops
-- between its commit and its publish sends it at its next start, under the
-- same `Nats-Msg-Id`, so JetStream stores no second copy. `id` keeps the order.
CREATE TABLE flow_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('job', 'event')),
    subject text NOT NULL,
    msg_id text NOT NULL,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
