CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Ed25519 keys that sign access tokens. The newest active key signs; every listed
-- key is published in the JWKS so tokens signed before a rotation stay valid.
-- (`COLLATE "C"` on the kid, a sort tie-breaker: byte order, as SQLite's BINARY.)
CREATE TABLE signing_keys (
    kid            TEXT COLLATE "C" PRIMARY KEY,
    private_pkcs8  TEXT NOT NULL,
    public_x       TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
