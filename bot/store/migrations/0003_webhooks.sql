-- Webhooks: deliveries queued with the inbound message (or status) that
-- caused them, every attempt logged, and each endpoint's health
-- (failing since, disabled). Secrets and tokens are never stored here:
-- they are read from the config in force at send time.
CREATE TABLE webhook_deliveries (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        subscriber_id TEXT NOT NULL,
        endpoint_key TEXT NOT NULL,
        url TEXT NOT NULL,
        format TEXT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        claimed_until REAL,
        last_status_code INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, created_at);
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries
        (subscriber_id, endpoint_key, status);

    CREATE TABLE webhook_attempts (
        seq INTEGER PRIMARY KEY,
        delivery_id TEXT NOT NULL,
        at REAL NOT NULL,
        outcome TEXT NOT NULL,
        status_code INTEGER,
        latency_ms REAL,
        response_body TEXT,
        error TEXT
    );
    CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, seq);

    CREATE TABLE webhook_endpoints (
        subscriber_id TEXT NOT NULL,
        endpoint_key TEXT NOT NULL,
        url TEXT NOT NULL,
        failing_since REAL,
        last_success_at REAL,
        last_failure_at REAL,
        disabled_at REAL,
        disabled_reason TEXT,
        PRIMARY KEY (subscriber_id, endpoint_key)
    ) WITHOUT ROWID;

    ALTER TABLE registrations ADD COLUMN keyword_at REAL;
    UPDATE registrations SET keyword_at = updated_at WHERE keyword_subscriber IS NOT NULL;

    CREATE INDEX outbound_chat_recent ON outbound (instance_id, to_number, created_at);
    CREATE INDEX outbound_group_recent ON outbound (instance_id, group_id, created_at)
        WHERE group_id IS NOT NULL
