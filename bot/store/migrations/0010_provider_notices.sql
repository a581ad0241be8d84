-- What providers tell about the account rather than a message: Meta's
-- account_update, template status/quality/category changes, calls and any
-- field it adds, and WAHA's session states. `detail` is the provider's JSON,
-- kept as sent, and the admin lists them newest first (GET /admin/notices).
CREATE TABLE provider_notices (
        seq INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        kind TEXT NOT NULL,
        instance_id INTEGER,
        event TEXT,
        detail TEXT NOT NULL,
        at REAL NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX provider_notices_kind ON provider_notices (provider, kind, seq)
