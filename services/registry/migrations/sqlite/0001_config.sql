-- Config values of the registry's key-value store. Instances are not stored: they
-- re-register after a restart (see the agent in emporium-client).
CREATE TABLE config (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    change_index BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
