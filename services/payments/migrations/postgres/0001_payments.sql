-- One payment per order. Card data kept: brand and last four digits, never the number.
CREATE TABLE payments (
    order_id   TEXT   PRIMARY KEY,
    status     TEXT   NOT NULL,
    amount     BIGINT NOT NULL,
    currency   TEXT   NOT NULL,
    brand      TEXT,
    last4      TEXT,
    attempts   BIGINT NOT NULL DEFAULT 0,
    reason     TEXT,
    -- The processor's id for the authorization.
    reference  TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
