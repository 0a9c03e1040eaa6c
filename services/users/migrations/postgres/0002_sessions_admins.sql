-- Sessions: one per sign-in, the family of its refresh tokens. Revoking a session
-- (sign-out, a reused refresh token, a password reset) ends every token in it.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    last_used_at_ms  BIGINT NOT NULL,
    -- The absolute end of the session, however often it is refreshed.
    expires_at_ms    BIGINT NOT NULL,
    revoked_at_ms    BIGINT,
    revoked_reason   TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Refresh tokens by the SHA-256 of the token (the token itself is never stored).
-- Each is used once: using it marks it used and issues its successor; a used one
-- presented again is a stolen copy, and revokes its session.
CREATE TABLE refresh_tokens (
    hash           TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL,
    issued_at_ms   BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    used_at_ms     BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Admins, granted by the operator (`emporium admin grant EMAIL`) by email: the
-- account with that email is an admin, now or once it registers.
CREATE TABLE admins (
    email          TEXT PRIMARY KEY,
    granted_at_ms  BIGINT NOT NULL
);
-- Accounts that became admins by the old `users.admin_emails` setting keep the role.
INSERT INTO admins (email, granted_at_ms)
    SELECT email, created_at_ms FROM users WHERE roles LIKE '%admin%';
UPDATE users SET roles = 'customer' WHERE roles LIKE '%admin%';

-- Signing keys retire when a newer one replaces them (`emporium keys rotate`);
-- a retired key is published until every token it signed has expired.
ALTER TABLE signing_keys ADD COLUMN retired_at_ms BIGINT;
