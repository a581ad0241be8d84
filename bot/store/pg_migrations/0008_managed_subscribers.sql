-- Subscribers managed at runtime (the admin API), beside the config file's
-- provisioned ones. A deleted subscriber keeps its row (deleted_at set) so
-- that its id is never reused and its history stays its own. `instances` is
-- a JSON list, dates are ISO text, `keyword_key` the keyword casefolded.
CREATE TABLE managed_subscribers (
    id text PRIMARY KEY,
    client_id text NOT NULL UNIQUE,
    plan text NOT NULL,
    since text NOT NULL,
    expires text,
    instances text NOT NULL,
    keyword text,
    keyword_key text,
    email text,
    name text,
    suspended_at double precision,
    deleted_at double precision,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE UNIQUE INDEX managed_subscribers_keyword ON managed_subscribers (keyword_key)
    WHERE keyword_key IS NOT NULL AND deleted_at IS NULL;
-- Client secrets, as SHA-256 digests only: several are in force while a
-- rotation overlaps (expires_at NULL: until the next rotation). Rows of a
-- provisioned subscriber with self_service = true override the file's hash.
CREATE TABLE subscriber_secrets (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id text NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision
);
CREATE INDEX subscriber_secrets_subscriber ON subscriber_secrets (subscriber_id, seq);
-- Every change to subscribers and their credentials, and every config
-- reload: when, who (admin, subscriber:<id>, config), from where, what.
-- `details` is JSON and never holds a secret.
CREATE TABLE audit_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    actor text NOT NULL,
    address text,
    action text NOT NULL,
    target text,
    details text NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_at ON audit_log (at);
-- Bumped by every change to the managed state, in the change's transaction:
-- each process compares it with the one it loaded (the safety net under
-- PostgreSQL's NOTIFY).
CREATE TABLE managed_version (version bigint NOT NULL);
INSERT INTO managed_version (version) VALUES (0);
