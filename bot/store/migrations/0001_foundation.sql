-- The foundation: registrations, groups, inbound log, outbound queue, auto-replies.
CREATE TABLE registrations (
        instance_id INTEGER NOT NULL,
        number TEXT NOT NULL,
        locale TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'opted_out')),
        keyword_subscriber TEXT,
        registered_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (instance_id, number)
    ) WITHOUT ROWID;
    CREATE INDEX registrations_number ON registrations (number);
    CREATE INDEX registrations_status ON registrations (status, instance_id);

    CREATE TABLE groups (
        instance_id INTEGER NOT NULL,
        group_id TEXT NOT NULL,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        registered_at REAL NOT NULL,
        PRIMARY KEY (instance_id, group_id)
    ) WITHOUT ROWID;
    CREATE INDEX groups_name ON groups (instance_id, name_key);

    CREATE TABLE inbound (
        seq INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        instance_id INTEGER NOT NULL,
        sender TEXT NOT NULL,
        user_id TEXT,
        group_id TEXT,
        kind TEXT NOT NULL,
        text TEXT,
        received_at REAL NOT NULL,
        UNIQUE (provider, provider_message_id)
    );
    CREATE INDEX inbound_sender ON inbound (sender);

    CREATE TABLE outbound (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        instance_id INTEGER NOT NULL,
        to_number TEXT,
        group_id TEXT,
        type TEXT NOT NULL,
        text TEXT,
        caption TEXT,
        filename TEXT,
        mime TEXT,
        media BLOB,
        subscriber_id TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        claimed_until REAL,
        provider_message_id TEXT,
        error_code INTEGER,
        error_title TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX outbound_due ON outbound (next_attempt_at) WHERE status = 'queued';
    CREATE INDEX outbound_provider_id ON outbound (provider_message_id);
    CREATE INDEX outbound_to ON outbound (to_number, instance_id);

    CREATE TABLE auto_replies (
        instance_id INTEGER NOT NULL,
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (instance_id, number, kind)
    ) WITHOUT ROWID;
