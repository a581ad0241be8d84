-- Webhook endpoints a subscriber manages itself (/v3/account/webhooks) or the
-- admin for it, beside the config file's. `url` is kept without a broker's
-- password, which is `password` (never shown), `events` is a JSON list,
-- and `token` is a whatsmate endpoint's. Each change bumps managed_version, and
-- every process merges the endpoints into its subscribers' webhooks.
CREATE TABLE stored_endpoints (
        id TEXT PRIMARY KEY,
        subscriber_id TEXT NOT NULL,
        url TEXT NOT NULL,
        password TEXT,
        format TEXT NOT NULL,
        events TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        description TEXT,
        token TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX stored_endpoints_subscriber ON stored_endpoints (subscriber_id, created_at);
-- Their signing secrets, kept as they are (each delivery is signed with
-- them): the current one (expires_at NULL) and earlier ones that still sign
-- until expires_at, a rotation's overlap.
CREATE TABLE stored_endpoint_secrets (
        seq INTEGER PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL
    );
    CREATE INDEX stored_endpoint_secrets_endpoint ON stored_endpoint_secrets (endpoint_id, seq)
