-- The customer-service window, business-scoped user ids, templates and costs.
-- registrations.user_id: the provider's user id (Meta's "US.1349..."), beside
-- the number: a user known only by it is keyed on it (number = user_id).
-- registrations.last_inbound_at: the user's last own message on that
-- instance (the provider's time): the window is open 24 hours after it.
-- Existing rows take it from the inbound log.
-- outbound.template: the template (JSON) a message goes out as.
-- outbound.pricing_category / billable: what the provider charged it as.
ALTER TABLE registrations ADD COLUMN user_id TEXT;
ALTER TABLE registrations ADD COLUMN last_inbound_at REAL;
UPDATE registrations SET last_inbound_at = (SELECT MAX(i.received_at) FROM inbound i
        WHERE i.sender = registrations.number AND i.instance_id = registrations.instance_id
        AND i.group_id IS NULL);
CREATE INDEX registrations_user_id ON registrations (user_id) WHERE user_id IS NOT NULL;
ALTER TABLE outbound ADD COLUMN template TEXT;
ALTER TABLE outbound ADD COLUMN pricing_category TEXT;
ALTER TABLE outbound ADD COLUMN billable INTEGER;
CREATE INDEX outbound_costs ON outbound (subscriber_id, pricing_category, billable)
    WHERE pricing_category IS NOT NULL
