-- The JetStream transport: which outbox rows the relay has published, and leases
-- that let one instance of a service at a time do a job (relaying its outbox).

-- Set once JetStream acknowledged the event; unset rows are the relay's backlog.
ALTER TABLE outbox ADD COLUMN sent_ms BIGINT;
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_ms IS NULL;

-- A job held by one instance until `until_ms`, renewed while it works.
CREATE TABLE leases (
    name     TEXT   PRIMARY KEY,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
