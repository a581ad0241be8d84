-- Provider statuses that arrive before the send's answer has given us the
-- provider message id: parked here, applied when the id is recorded.
CREATE TABLE early_statuses (
        provider_message_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        error_code INTEGER,
        error_title TEXT,
        received_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX early_statuses_age ON early_statuses (received_at)
