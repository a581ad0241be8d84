-- Dashboard and portal sessions, recorded so that logging out (or out
-- everywhere) ends them at once, in every process: the browser's cookie holds
-- a random key, a row holds its SHA-256 (a copy of the table opens nothing),
-- who it is for, the fingerprint of the credential it was opened with, its
-- forms' CSRF token and when it ends. Ended sessions are deleted.
CREATE TABLE web_sessions (
        key_hash TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        subject TEXT NOT NULL,
        credential TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX web_sessions_subject ON web_sessions (role, subject);
    CREATE INDEX web_sessions_expiry ON web_sessions (expires_at)
