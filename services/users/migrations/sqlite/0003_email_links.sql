-- When the account proved it receives mail at its address (a verification or
-- reset link used); NULL until then.
ALTER TABLE users ADD COLUMN email_verified_at_ms BIGINT;
-- The last verification mail and the last reset mail asked for: at most one of
-- each a minute per account.
ALTER TABLE users ADD COLUMN verification_mailed_at_ms BIGINT;
ALTER TABLE users ADD COLUMN reset_mailed_at_ms BIGINT;

-- One-time link tokens by their SHA-256 (the token is only ever in the mail).
-- Minting one for a purpose retires the account's earlier ones for it.
CREATE TABLE email_tokens (
    hash           TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    used_at_ms     BIGINT
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);
