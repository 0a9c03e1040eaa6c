-- The events chassis' tables, in every service's own database.

-- Events this service published, in commit order (SQLite serialises writers, so
-- `seq` order is commit order and a reader never skips a row that commits later).
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
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
    event_id     TEXT   PRIMARY KEY,
    subscription TEXT   NOT NULL,
    type         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    envelope     TEXT   NOT NULL,
    error        TEXT   NOT NULL,
    attempts     BIGINT NOT NULL,
    parked_ms    BIGINT NOT NULL
);
