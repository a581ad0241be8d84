-- Subscribers managed at runtime (the admin API), beside the config file's
-- provisioned ones. A deleted subscriber keeps its row (deleted_at set) so
-- that its id is never reused and its history stays its own. `instances` is
-- a JSON list, dates are ISO text, `keyword_key` the keyword casefolded.
CREATE TABLE managed_subscribers (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL UNIQUE,
        plan TEXT NOT NULL,
        since TEXT NOT NULL,
        expires TEXT,
        instances TEXT NOT NULL,
        keyword TEXT,
        keyword_key TEXT,
        email TEXT,
        name TEXT,
        suspended_at REAL,
        deleted_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX managed_subscribers_keyword ON managed_subscribers (keyword_key)
        WHERE keyword_key IS NOT NULL AND deleted_at IS NULL;
-- Client secrets, as SHA-256 digests only: several are in force while a
-- rotation overlaps (expires_at NULL: until the next rotation). Rows of a
-- provisioned subscriber with self_service = true override the file's hash.
CREATE TABLE subscriber_secrets (
        seq INTEGER PRIMARY KEY,
        subscriber_id TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL
    );
    CREATE INDEX subscriber_secrets_subscriber ON subscriber_secrets (subscriber_id, seq);
-- Every change to subscribers and their credentials, and every config
-- reload: when, who (admin, subscriber:<id>, config), from where, what.
-- `details` is JSON and never holds a secret.
CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        address TEXT,
        action TEXT NOT NULL,
        target TEXT,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_log_target ON audit_log (target, seq);
    CREATE INDEX audit_log_actor ON audit_log (actor, seq);
    CREATE INDEX audit_log_at ON audit_log (at);
-- Bumped by every change to the managed state, in the change's transaction:
-- each process compares it with the one it loaded (the safety net under
-- PostgreSQL's NOTIFY).
CREATE TABLE managed_version (version INTEGER NOT NULL);
    INSERT INTO managed_version (version) VALUES (0)
