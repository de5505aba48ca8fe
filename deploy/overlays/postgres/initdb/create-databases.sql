-- Run once by the postgres image's entrypoint, when it initialises an empty data directory.
-- Each service owns its data and its migration history (sqlx's _sqlx_migrations table), so each
-- gets a database of its own; the names match the URLs in patches/*.yaml.
CREATE DATABASE account;
CREATE DATABASE warehouse;
CREATE DATABASE payment;
