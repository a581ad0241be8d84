-- As on PostgreSQL (pg_migrations/0014): the index by provider id is looked up
-- by equality only (a status, a reply's context), so a queued message, with
-- no provider id yet, takes no entry.
DROP INDEX outbound_provider_id;
CREATE INDEX outbound_provider_id ON outbound (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
