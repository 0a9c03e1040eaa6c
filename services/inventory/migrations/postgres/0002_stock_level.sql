-- The level (in_stock, low, sold_out) last announced with StockChanged, and how many
-- times it was: a level change bumps the version and publishes the event.
ALTER TABLE stock ADD COLUMN level TEXT NOT NULL DEFAULT '';
ALTER TABLE stock ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
