-- The customer-service window, business-scoped user ids, templates and costs
-- (as SQLite's 0007): a registration's user_id and the time of the user's
-- last own message there, the template a message goes out as, and what the
-- provider charged it as.
ALTER TABLE registrations ADD COLUMN user_id text;
ALTER TABLE registrations ADD COLUMN last_inbound_at double precision;
UPDATE registrations SET last_inbound_at = (SELECT MAX(i.received_at) FROM inbound i
    WHERE i.sender = registrations.number AND i.instance_id = registrations.instance_id
    AND i.group_id IS NULL);
CREATE INDEX registrations_user_id ON registrations (user_id) WHERE user_id IS NOT NULL;
ALTER TABLE outbound ADD COLUMN template text;
ALTER TABLE outbound ADD COLUMN pricing_category text;
ALTER TABLE outbound ADD COLUMN billable smallint;  -- 0/1, as SQLite keeps it
CREATE INDEX outbound_costs ON outbound (subscriber_id, pricing_category, billable)
    WHERE pricing_category IS NOT NULL;
