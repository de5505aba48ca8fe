-- The warehouse's tables (SQLite). Keep in step with ../postgres/0001_init.sql: same tables,
-- columns and constraints; only key generation and type names differ.

-- AUTOINCREMENT keeps ids of deleted rows from coming back, so a product id that the ledger or a
-- payment remembers never names a different product later.
CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    price_cents BIGINT  NOT NULL CHECK (price_cents >= 0),
    rate        REAL    NOT NULL CHECK (rate >= 0 AND rate <= 10),
    description TEXT    NOT NULL,
    cover       TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

CREATE TABLE specifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT  NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    item       TEXT    NOT NULL,
    value      TEXT    NOT NULL
);
CREATE INDEX specifications_by_product ON specifications (product_id, id);

-- One row per product. The CHECKs are the last line of defence: the reservation SQL already
-- refuses to take more than there is.
CREATE TABLE stockpiles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT  NOT NULL UNIQUE REFERENCES products (id) ON DELETE CASCADE,
    amount     BIGINT  NOT NULL CHECK (amount >= 0),
    frozen     BIGINT  NOT NULL CHECK (frozen >= 0)
);

CREATE TABLE advertisements (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    image      TEXT    NOT NULL,
    product_id BIGINT  NOT NULL REFERENCES products (id) ON DELETE CASCADE
);
CREATE INDEX advertisements_by_product ON advertisements (product_id);

-- The reservation ledger: one row per payment, one line per (payment, product). Lines carry no
-- foreign key to products: the ledger is history and outlives a deleted product.
CREATE TABLE reservations (
    payment_id TEXT   PRIMARY KEY,
    state      TEXT   NOT NULL CHECK (state IN ('RESERVED', 'COMMITTED', 'RELEASED')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE reservation_lines (
    payment_id TEXT   NOT NULL REFERENCES reservations (payment_id),
    product_id BIGINT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payment_id, product_id)
);

-- Facts about the database itself, such as whether the demo catalogue was ever seeded.
CREATE TABLE warehouse_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
