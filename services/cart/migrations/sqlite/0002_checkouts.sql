-- What checkouts took out of carts, by order: the lines (JSON, as they were in the
-- cart) wait here until the order's outcome. `taken`: out of the cart, the order
-- under way; `returned`: put back (the order was cancelled, never placed, or its
-- outcome did not arrive by `expires_ms`). Confirmed orders' rows are deleted.
CREATE TABLE cart_checkouts (
    order_id        TEXT   PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL,
    lines           TEXT   NOT NULL,
    state           TEXT   NOT NULL CHECK (state IN ('taken', 'returned')),
    expires_ms      BIGINT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX cart_checkouts_by_state ON cart_checkouts (state, expires_ms);
