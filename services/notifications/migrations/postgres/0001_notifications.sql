-- Who to write to, learned from users' UserRegistered.
CREATE TABLE recipients (
    user_id TEXT PRIMARY KEY,
    email   TEXT NOT NULL,
    name    TEXT NOT NULL
);

-- Every message, from the event that caused it to its delivery.
-- (`COLLATE "C"` on the id, a sort tie-breaker: byte order, as SQLite's BINARY.)
CREATE TABLE messages (
    id           TEXT   COLLATE "C" PRIMARY KEY,
    user_id      TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    text_body    TEXT   NOT NULL,
    html_body    TEXT   NOT NULL,
    -- pending until delivered, then sent.
    status       TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    next_try_ms  BIGINT NOT NULL,
    -- When the causing event was published (its CloudEvents time).
    event_ms     BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    sent_ms      BIGINT
);
CREATE INDEX messages_pending ON messages (status, next_try_ms);
CREATE INDEX messages_by_user ON messages (user_id, created_ms);
