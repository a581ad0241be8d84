-- Webhook endpoints a subscriber manages itself (/v3/account/webhooks) or the
-- admin for it, beside the config file's. `url` is kept without a broker's
-- password, which is `password` (never shown), `events` is a JSON list,
-- and `token` is a whatsmate endpoint's. Each change bumps managed_version, and
-- every process merges the endpoints into its subscribers' webhooks.
CREATE TABLE stored_endpoints (
    id text PRIMARY KEY,
    subscriber_id text NOT NULL,
    url text NOT NULL,
    password text,
    format text NOT NULL,
    events text NOT NULL,
    enabled integer NOT NULL,
    description text,
    token text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE INDEX stored_endpoints_subscriber ON stored_endpoints (subscriber_id, created_at);
-- Their signing secrets, kept as they are (each delivery is signed with
-- them): the current one (expires_at NULL) and earlier ones that still sign
-- until expires_at, a rotation's overlap.
CREATE TABLE stored_endpoint_secrets (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id text NOT NULL,
    secret text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision
);
CREATE INDEX stored_endpoint_secrets_endpoint ON stored_endpoint_secrets (endpoint_id, seq);
