-- Failed sign-ins per email and per client address (the login throttle), shared by
-- every users instance. `key` is `account:<email>` or `ip:<address>`.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    blocked_until_ms BIGINT NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle (last_ms);
