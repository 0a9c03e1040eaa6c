-- Failed sign-ins per email and per client address (the login throttle), shared by
-- every users instance. `key` is `account:<email>` or `ip:<address>`.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    blocked_until_ms INTEGER NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle (last_ms);
