-- Orders and the state of their checkout saga.
-- (`COLLATE "C"` on sorted text: byte order, as SQLite's BINARY, so keyset cursors
-- and line order are the same on both engines.)
CREATE TABLE orders (
    id              TEXT   COLLATE "C" PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL,
    -- Fingerprint of the request, to refuse a key reused with a different body.
    request_hash    TEXT   NOT NULL,
    -- Public status: PENDING, CONFIRMED, CANCELLED.
    status          TEXT   NOT NULL,
    -- Saga step: reserve, authorize, complete, compensate, done.
    step            TEXT   NOT NULL,
    reason          TEXT,
    detail          TEXT,
    total           BIGINT NOT NULL,
    currency        TEXT   NOT NULL,
    card_brand      TEXT   NOT NULL,
    card_last4      TEXT   NOT NULL,
    shipping        TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    -- Past this, a saga that has not reached its payment authorization compensates.
    deadline_ms     BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_by_user ON orders (user_id, created_ms, id);
CREATE INDEX orders_in_flight ON orders (step, updated_ms);

CREATE TABLE order_lines (
    order_id   TEXT   NOT NULL REFERENCES orders (id),
    sku        TEXT   COLLATE "C" NOT NULL,
    product_id TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    unit_price BIGINT NOT NULL,
    quantity   BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- What happened to an order, in order.
CREATE TABLE order_timeline (
    order_id TEXT   NOT NULL REFERENCES orders (id),
    seq      BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    event    TEXT   NOT NULL,
    detail   TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (order_id, seq)
);
