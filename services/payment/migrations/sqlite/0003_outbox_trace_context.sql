-- The W3C trace context of the request that owed each call: its delivery, maybe after a
-- restart, is traced as a follow-up linked to that request.
ALTER TABLE warehouse_outbox ADD COLUMN traceparent TEXT;
