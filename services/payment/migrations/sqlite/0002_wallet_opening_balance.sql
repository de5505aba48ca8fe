-- Each wallet remembers the balance it was opened with, so that "opening balance = balance +
-- Σ PAYED totals" can be audited per account even after the configured opening balance changes.
ALTER TABLE wallets ADD COLUMN opening_cents BIGINT NOT NULL DEFAULT 0;

-- Wallets that predate the column: their opening balance is what they hold plus what they paid.
UPDATE wallets SET opening_cents = balance_cents + COALESCE((
    SELECT SUM(p.total_cents) FROM payments p
    WHERE p.account_id = wallets.account_id AND p.state = 'PAYED'), 0);
