-- Accounts and their roles (SQLite).
--
-- Uniqueness lives in the database so that two racing registrations cannot both win. Each unique
-- constraint's name contains the column it guards; the store maps a violation back to that field.
-- Absent e-mail addresses and telephone numbers are NULL, and NULLs never clash with each other.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    avatar        TEXT,
    telephone     TEXT,
    email         TEXT,
    location      TEXT,
    -- A PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash). Never leaves the store except to be verified.
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT accounts_username_key UNIQUE (username),
    CONSTRAINT accounts_telephone_key UNIQUE (telephone),
    CONSTRAINT accounts_username_lower CHECK (username = lower(username))
);

-- E-mail addresses are unique regardless of case (the domain part is case-insensitive, and nobody
-- expects Alice@x.com and alice@x.com to be two people).
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));

CREATE TABLE account_roles (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT   NOT NULL,
    PRIMARY KEY (account_id, role)
);
