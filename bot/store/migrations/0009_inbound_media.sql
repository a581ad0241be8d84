-- Files users send: fetched from the provider after the message is stored
-- (the row is queued in the message's own transaction, so a crash before the
-- fetch loses nothing), kept until expires_at ([media] retention_days), then
-- deleted. A message.received carrying one waits for it (media_id below).
CREATE TABLE inbound_media (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        instance_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        provider_media_id TEXT NOT NULL,
        source_url TEXT,
        mime_type TEXT,
        filename TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        claimed_until REAL,
        claimed_by TEXT,
        error TEXT,
        size INTEGER,
        sha256 TEXT,
        content BLOB,
        created_at REAL NOT NULL,
        fetched_at REAL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX inbound_media_due ON inbound_media (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX inbound_media_expiry ON inbound_media (expires_at);
    -- Secrets the service generates for itself (the media links' key), the
    -- same for every process on the store.
    CREATE TABLE server_keys (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    ALTER TABLE webhook_deliveries ADD COLUMN media_id TEXT;
    CREATE INDEX webhook_deliveries_media ON webhook_deliveries (media_id)
        WHERE media_id IS NOT NULL;
