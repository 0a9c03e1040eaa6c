-- Adds made with an Idempotency-Key, so a repeated request (a client's retry, or
-- the gateway's after a reset connection) adds nothing the second time. Kept a
-- day, then pruned by the sweep.
CREATE TABLE cart_adds (
    user_id         TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL,
    sku             TEXT   NOT NULL,
    quantity        BIGINT NOT NULL,
    created_ms      BIGINT NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX cart_adds_by_age ON cart_adds (created_ms);
