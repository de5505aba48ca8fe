-- The unit price each reserved line was taken at (keep in step with ../sqlite/0003_reservation_prices.sql),
-- returned with the reservation so the payment service can price a settlement without asking
-- for every product. Lines reserved before this migration have none (NULL).
ALTER TABLE reservation_lines ADD COLUMN price_cents BIGINT;
