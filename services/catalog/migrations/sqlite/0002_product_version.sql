-- Grows by one with every change of a product; events and snapshots carry it so a
-- read model keeps the newest view whatever order they arrive in.
ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
