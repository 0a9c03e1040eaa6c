-- `COLLATE "C"` on sorted text: the same byte order as SQLite's BINARY, whatever the
-- database's locale, so listings and their keyset cursors behave as on SQLite.

CREATE TABLE categories (
    id          TEXT PRIMARY KEY,          -- a slug such as `home-kitchen`
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL
);

CREATE TABLE products (
    id            TEXT COLLATE "C" PRIMARY KEY,
    sku           TEXT NOT NULL UNIQUE,
    name          TEXT COLLATE "C" NOT NULL,
    description   TEXT NOT NULL,
    category_id   TEXT NOT NULL REFERENCES categories (id),
    price_minor   BIGINT NOT NULL CHECK (price_minor > 0),
    currency      TEXT NOT NULL,
    image_url     TEXT NOT NULL,
    attributes    TEXT NOT NULL,           -- a JSON object of strings
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Keyset pagination: every listing order ends in the id, so pages never skip or repeat.
CREATE INDEX products_by_price ON products (price_minor, id);
CREATE INDEX products_by_name ON products (name, id);
CREATE INDEX products_by_category_price ON products (category_id, price_minor, id);
CREATE INDEX products_by_category_name ON products (category_id, name, id);
