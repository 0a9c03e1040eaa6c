-- The source of truth: an append-only store of review events, a stream per review.
-- `position` orders every event; (stream_id, version) is the optimistic concurrency
-- check: an append of a version that exists fails, so two edits of the same version
-- cannot both win.
CREATE TABLE review_events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id   TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    recorded_ms BIGINT  NOT NULL,
    UNIQUE (stream_id, version)
);

-- Projections of the store, rebuilt from it on demand.
CREATE TABLE reviews (
    id          TEXT    PRIMARY KEY,
    product_id  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    rating      BIGINT  NOT NULL,
    title       TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    hidden      BIGINT  NOT NULL DEFAULT 0,
    created_ms  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    version     BIGINT  NOT NULL
);
CREATE INDEX reviews_by_product_recent ON reviews (product_id, created_ms, id);
CREATE INDEX reviews_by_product_rating ON reviews (product_id, rating, created_ms, id);

CREATE TABLE rating_summaries (
    product_id TEXT   PRIMARY KEY,
    count      BIGINT NOT NULL,
    total      BIGINT NOT NULL,
    h1         BIGINT NOT NULL,
    h2         BIGINT NOT NULL,
    h3         BIGINT NOT NULL,
    h4         BIGINT NOT NULL,
    h5         BIGINT NOT NULL,
    version    BIGINT NOT NULL
);

-- How far each projection has applied the store.
CREATE TABLE projection_state (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

-- What reviews learns from other services: who bought what, and reviewers' names.
CREATE TABLE purchases (
    user_id    TEXT NOT NULL,
    product_id TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE TABLE reviewers (
    user_id TEXT PRIMARY KEY,
    name    TEXT NOT NULL
);
