-- What providers tell about the account rather than a message: Meta's
-- account_update, template status/quality/category changes, calls and any
-- field it adds, and WAHA's session states. `detail` is the provider's JSON,
-- kept as sent, and the admin lists them newest first (GET /admin/notices).
CREATE TABLE provider_notices (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    kind text NOT NULL,
    instance_id integer,
    event text,
    detail text NOT NULL,
    at double precision NOT NULL,
    received_at double precision NOT NULL
);
CREATE INDEX provider_notices_kind ON provider_notices (provider, kind, seq);
