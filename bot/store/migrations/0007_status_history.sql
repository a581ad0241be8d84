-- Each outbound message's status history: one row per change the store
-- applies (queued, sent, each advancing provider status, failed) and per
-- retried attempt ('retry', with the error that caused it), written in the
-- transaction that makes the change. Messages are never deleted, so neither
-- are their rows.
CREATE TABLE outbound_history (
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        at REAL NOT NULL,
        status TEXT NOT NULL,
        error_code INTEGER,
        error_title TEXT
    );
    CREATE INDEX outbound_history_message ON outbound_history (message_id, seq)
