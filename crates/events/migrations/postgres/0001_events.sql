-- The events chassis' tables, in every service's own database (PostgreSQL: in the
-- service's schema). `COLLATE "C"` where text is sorted: the same byte order as
-- SQLite's BINARY, whatever the database's locale.

-- Events this service published, in `seq` order. Unlike SQLite, PostgreSQL takes a
-- `seq` at INSERT, not at commit: concurrent publishers can commit out of `seq` order,
-- so publishing must be serialized until commit (a lock on the outbox) for a reader
-- never to skip a row that commits later.
CREATE TABLE outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    time_ms     BIGINT  NOT NULL,
    traceparent TEXT,
    data        TEXT    NOT NULL
);

-- How far each subscription of this service has read its producer's feed.
CREATE TABLE event_cursors (
    subscription TEXT   PRIMARY KEY,
    position     BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

-- Ids of events whose effect is committed: a redelivery finds its id here.
CREATE TABLE processed_events (
    event_id     TEXT   PRIMARY KEY,
    subscription TEXT   NOT NULL,
    processed_ms BIGINT NOT NULL
);

-- Events whose handler kept failing, parked until replayed.
CREATE TABLE dead_letters (
    event_id     TEXT   COLLATE "C" PRIMARY KEY,
    subscription TEXT   NOT NULL,
    type         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    envelope     TEXT   NOT NULL,
    error        TEXT   NOT NULL,
    attempts     BIGINT NOT NULL,
    parked_ms    BIGINT NOT NULL
);
