-- Bookkeeping only; the catalogue tables arrive with the warehouse issue.
CREATE TABLE IF NOT EXISTS warehouse_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
