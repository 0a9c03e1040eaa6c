-- One cart per user: its lines, priced as catalog last announced.
-- (`COLLATE "C"`: sorts like SQLite's BINARY, whatever the database's locale.)
CREATE TABLE cart_items (
    user_id    TEXT   NOT NULL,
    sku        TEXT   COLLATE "C" NOT NULL,
    product_id TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    unit_price BIGINT NOT NULL,
    currency   TEXT   NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_ms   BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, sku)
);
CREATE INDEX cart_items_by_sku ON cart_items (sku);
