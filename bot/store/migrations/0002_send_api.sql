-- Send API: each subscriber's running quota period and the recipients it has
-- ever sent to (the plan's "recipients in total"), both checked and advanced
-- in the same transaction that queues the message.
CREATE TABLE send_quota (
        subscriber_id TEXT PRIMARY KEY,
        period_start REAL NOT NULL,
        count INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE send_recipients (
        subscriber_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        first_sent_at REAL NOT NULL,
        PRIMARY KEY (subscriber_id, recipient)
    ) WITHOUT ROWID;
