-- Stock receipts (PostgreSQL; keep in step with ../sqlite/0002_stock_receipts.sql): every change
-- an administrator (or the demo seed) makes to a product's sellable amount, as a signed delta. The
-- sum of a product's deltas is the stock ever put in, which the conservation audit compares with
-- amount + frozen + committed; without this record that equation could only be a tautology.
CREATE TABLE stock_receipts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id   BIGINT NOT NULL,
    delta        BIGINT NOT NULL,
    amount_after BIGINT NOT NULL CHECK (amount_after >= 0),
    created_at   BIGINT NOT NULL
);
CREATE INDEX stock_receipts_by_product ON stock_receipts (product_id, id);

-- Databases that predate this table: what is on hand, held or sold now is taken as put in.
INSERT INTO stock_receipts (product_id, delta, amount_after, created_at)
SELECT s.product_id,
       s.amount + s.frozen + COALESCE((
           SELECT SUM(l.amount) FROM reservation_lines l
           JOIN reservations r ON r.payment_id = l.payment_id
           WHERE l.product_id = s.product_id AND r.state = 'COMMITTED'), 0),
       s.amount,
       0
FROM stockpiles s;
