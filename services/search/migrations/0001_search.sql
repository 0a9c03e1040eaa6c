-- What search knows of each product, merged from catalog, inventory and reviews
-- events (each part kept only if its version is newer). The tantivy index is a
-- projection of this table: `changed` orders the changes it has to apply. Search
-- keeps this database in its own data folder whatever the other services use (a
-- disposable read model), so it is SQLite only.
CREATE TABLE documents (
    product_id       TEXT    PRIMARY KEY,
    sku              TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL DEFAULT '',
    description      TEXT    NOT NULL DEFAULT '',
    category         TEXT    NOT NULL DEFAULT '',
    price            BIGINT  NOT NULL DEFAULT 0,
    currency         TEXT    NOT NULL DEFAULT '',
    image_url        TEXT    NOT NULL DEFAULT '',
    attributes       TEXT    NOT NULL DEFAULT '{}',
    created_ms       BIGINT  NOT NULL DEFAULT 0,
    -- NULL until catalog's view of the product arrived: not searchable before.
    product_version  BIGINT,
    -- NULL: stock unknown.
    available        BIGINT,
    stock_level      TEXT,
    stock_version    BIGINT  NOT NULL DEFAULT -1,
    rating_count     BIGINT  NOT NULL DEFAULT 0,
    -- Hundredths of a star.
    rating_average   BIGINT  NOT NULL DEFAULT 0,
    rating_histogram TEXT    NOT NULL DEFAULT '[0,0,0,0,0]',
    rating_version   BIGINT  NOT NULL DEFAULT -1,
    changed          BIGINT  NOT NULL,
    changed_ms       BIGINT  NOT NULL
);
CREATE INDEX documents_by_change ON documents (changed);

-- The change counter, and this table's generation: an index built from another
-- generation of the table (the database was deleted, not the index) is rebuilt.
CREATE TABLE index_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    changes    BIGINT  NOT NULL,
    generation TEXT    NOT NULL
);
