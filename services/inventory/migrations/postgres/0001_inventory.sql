-- Stock per SKU. Invariant: available + reserved + sold = every unit ever stocked.
-- (`COLLATE "C"` on SKUs: byte order, as SQLite's BINARY and Rust's BTreeMap, so
-- rows are locked in one order whichever side sorts them.)
CREATE TABLE stock (
    sku        TEXT    COLLATE "C" PRIMARY KEY,
    product_id TEXT    NOT NULL,
    available  BIGINT  NOT NULL CHECK (available >= 0),
    reserved   BIGINT  NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold       BIGINT  NOT NULL DEFAULT 0 CHECK (sold >= 0),
    -- Units added or removed by restocking (admin), so the invariant can be checked:
    -- available + reserved + sold = initial + adjusted.
    initial    BIGINT  NOT NULL,
    adjusted   BIGINT  NOT NULL DEFAULT 0,
    updated_ms BIGINT  NOT NULL
);

-- One reservation per order: reserved -> committed | released; or rejected.
CREATE TABLE reservations (
    order_id    TEXT   PRIMARY KEY,
    status      TEXT   NOT NULL,
    unavailable TEXT   NOT NULL DEFAULT '',
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);

CREATE TABLE reservation_lines (
    order_id TEXT   NOT NULL REFERENCES reservations (order_id),
    sku      TEXT   COLLATE "C" NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
