-- Which instance drives an order's saga, and until when without renewing: with
-- several orders instances, recovery takes over only sagas whose owner stopped
-- renewing (crashed), never one another instance is driving.
ALTER TABLE orders ADD COLUMN owner TEXT;
ALTER TABLE orders ADD COLUMN owner_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX orders_by_owner ON orders (step, owner_until);
