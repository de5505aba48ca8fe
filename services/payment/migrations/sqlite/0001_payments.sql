-- Payments, their lines, wallets, idempotency keys, and the outbox of warehouse calls.
-- Money is integer cents; times are Unix milliseconds.

CREATE TABLE payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pay_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    state TEXT NOT NULL CHECK (state IN ('WAITING', 'CANCEL', 'PAYED', 'TIMEOUT')),
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    recipient_name TEXT NOT NULL,
    telephone TEXT NOT NULL,
    location TEXT NOT NULL,
    pay_method TEXT NOT NULL,
    delivery TEXT NOT NULL
);
-- The expiry sweeper's query: WAITING payments by expiry.
CREATE INDEX payments_state_expires ON payments (state, expires_ms);
CREATE INDEX payments_account ON payments (account_id);

CREATE TABLE payment_items (
    pay_id TEXT NOT NULL REFERENCES payments (pay_id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 1),
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (pay_id, product_id)
);

CREATE TABLE wallets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL UNIQUE,
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0),
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    account_id BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    operation TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);

-- Warehouse calls owed because of a committed state change, delivered by the relay until the
-- warehouse confirms. PENDING -> DONE (kept for a while, as an audit trail) or DEAD (the
-- warehouse refused for good; needs a person).
CREATE TABLE warehouse_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pay_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('COMMIT', 'RELEASE')),
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'DONE', 'DEAD')),
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX warehouse_outbox_due ON warehouse_outbox (status, next_attempt_ms);
CREATE INDEX warehouse_outbox_pay_id ON warehouse_outbox (pay_id);
