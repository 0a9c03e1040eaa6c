-- Config values of the registry's key-value store. Instances are not stored: they
-- re-register after a restart (see the agent in emporium-client).
-- `COLLATE "C"` on the key: prefix listings are range scans (`key >= prefix AND
-- key < prefix || U+10FFFF`) that need byte order, as SQLite's BINARY gives.
CREATE TABLE config (
    key         TEXT COLLATE "C" PRIMARY KEY,
    value       TEXT NOT NULL,
    change_index BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
